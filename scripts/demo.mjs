#!/usr/bin/env node
// `npm run demo`: install (when needed), build, fetch SmolLM2-135M-Instruct, and answer one
// question greedily, printing the reply and the stats line; then answer it again with the
// weights on flash under a DRAM budget of 50 % of the model (converted once into the cache),
// printing the flash stats; last, the peak RSS of a short answer dense and under a budget side
// by side. Each step says what it runs; a
// failing step ends the demo with its name and a non-zero exit code.
//   --skip-build  skip the install and build steps (the tree is built already: npm test runs the
//                 demo this way, test/demo.test.ts)
//   --json        end stdout with one JSON line: the model file's bytes and the peak RSS of the
//                 dense and the budgeted run (with the CLI's --json schema field)
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const bin = join(root, "bin", "activeflow.js");
const QUESTION = "What is the capital of France, and what is it famous for?";
const FLAGS = new Set(["--skip-build", "--json"]);
const flags = process.argv.slice(2);
for (const f of flags) {
  if (!FLAGS.has(f)) {
    console.error(`demo: unknown option ${f} (known: ${[...FLAGS].join(", ")})`);
    process.exit(2);
  }
}
const skipBuild = flags.includes("--skip-build");
const json = flags.includes("--json");

function step(name, cmd, args, { capture = false, quiet = false } = {}) {
  const shown = [cmd === process.execPath ? "node" : cmd, ...args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a));
  console.error(`\n== ${name}: ${shown.join(" ")}`);
  const r = spawnSync(cmd, args, {
    cwd: root,
    stdio: capture || quiet ? ["inherit", "pipe", "inherit"] : "inherit",
    encoding: "utf8",
    shell: process.platform === "win32",
  });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error !== undefined ? r.error.message : r.signal !== null ? `signal ${r.signal}` : `exit code ${r.status}`;
    console.error(`\ndemo failed at step "${name}" (${why})`);
    process.exit(r.status && r.status > 0 ? r.status : 1);
  }
  if (capture) process.stdout.write(r.stdout);
  return r.stdout ?? "";
}

// npm install only when node_modules is missing or older than package.json.
function needsInstall() {
  const marker = join(root, "node_modules", ".package-lock.json");
  if (!existsSync(join(root, "node_modules"))) return true;
  const installed = existsSync(marker) ? statSync(marker).mtimeMs : statSync(join(root, "node_modules")).mtimeMs;
  return statSync(join(root, "package.json")).mtimeMs > installed;
}

if (skipBuild) console.error("== install and build: skipped (--skip-build)");
else {
  if (needsInstall()) step("install", npm, ["install"]);
  else console.error("== install: node_modules is up to date, skipping npm install");
  step("build", npm, ["run", "build"]);
}
const fetched = step("fetch", process.execPath, [bin, "fetch", "smollm2"], { capture: true });
const model = fetched.trim().split("\n").pop();
if (!model) {
  console.error('\ndemo failed at step "fetch" (no model path printed)');
  process.exit(1);
}
console.error(`\nQ: ${QUESTION}`);
step("chat", process.execPath, [bin, "chat", model, "-p", QUESTION, "-n", "64", "--greedy"]);
console.error(`\nQ (weights on flash, DRAM budget 50 % of the model): ${QUESTION}`);
step("chat under a DRAM budget", process.execPath, [bin, "chat", model, "-p", QUESTION, "-n", "32", "--greedy", "--dram", "50%"]);

// The saving a budget buys: the same short answer dense and at the demo's budget, peak RSS of
// each, each in its own process (the budgeted file was converted by the step above, so no
// conversion sits in the budgeted peak).
const MEMORY_PROMPT = "The capital of France is";
const BUDGET_ARGS = ["--dram", "35%", "--sparsity", "0.4"];
const rssOf = (extra) => {
  const out = step(`measure peak RSS${extra.length ? " under a budget" : " dense"}`, process.execPath,
    [bin, "run", model, "-p", MEMORY_PROMPT, "-n", "16", "--greedy", "--json", ...extra], { capture: false, quiet: true });
  const record = JSON.parse(out.trim().split("\n").pop());
  return { args: extra, rss_peak_bytes: record.rss_peak_bytes, runtime_floor_bytes: record.runtime_floor_bytes };
};
const dense = rssOf([]);
const budgeted = rssOf(BUDGET_ARGS);
const fileBytes = statSync(model).size;
const saving = dense.rss_peak_bytes - budgeted.rss_peak_bytes;
const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.error(`\npeak RSS: dense ${mib(dense.rss_peak_bytes)}, ${BUDGET_ARGS.join(" ")} ${mib(budgeted.rss_peak_bytes)}: ` +
  `${mib(saving)} less, ${((saving / fileBytes) * 100).toFixed(0)} % of the ${mib(fileBytes)} model file`);
if (json) {
  const { JSON_SCHEMA } = await import(pathToFileURL(join(root, "dist", "src", "cli", "output.js")).href);
  console.log(JSON.stringify({ schema: JSON_SCHEMA, model_path: model, model_file_bytes: fileBytes, dense, budgeted, saving_bytes: saving, saving_fraction_of_file: saving / fileBytes }));
}
