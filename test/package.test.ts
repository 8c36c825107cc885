// Issue 11's packaging acceptance: what `npm pack` makes installs into an empty folder and
// works there. The repository's sources are copied to a temporary checkout first (without
// dist/ and build/), so the tarball's dist/ must come from its own prepack step and this
// checkout's dist/ is left alone. The install compiles the addon with the system compiler,
// as a user's install does, and fetches nothing but npm packages: --offline from the npm
// cache, or --prefer-offline (the npm registry only) when the cache lacks the packages'
// metadata, which an install of this repository from its lockfile does not store.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./helpers/repo.js";

// Top-level entries of the checkout that the package never holds: not copied, to save time.
const NOT_COPIED = new Set([".git", "node_modules", "dist", "build", "bench", "test", ".scratch", ".cache", "models"]);
const NPM_TIMEOUT_MS = 8 * 60_000;

const npmMissing = spawnSync("npm", ["--version"], { encoding: "utf8" }).status !== 0;
const skip = npmMissing ? "npm is not on PATH" : false;

// The environment of the npm runs: without what the enclosing `npm test` sets for its own
// project (npm_config_local_prefix would point the install back at this repository), but with
// the user's npm configuration (cache, registry, config files).
function npmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const keep = new Set(["npm_config_cache", "npm_config_registry", "npm_config_userconfig", "npm_config_globalconfig", "npm_config_cafile"]);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if ((/^npm_/i.test(k) && !keep.has(k.toLowerCase())) || k === "INIT_CWD") continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string, env = npmEnv()): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: NPM_TIMEOUT_MS, maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (status ${r.status}, ${r.error?.message ?? ""}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: { path: string }[];
}

let dir = "";
let pack: PackResult;
let installDir = "";
let installMode = "";
let installSeconds = 0;

before(() => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), "af-package-"));
  const checkout = join(dir, "checkout");
  cpSync(REPO_ROOT, checkout, { recursive: true, filter: (src) => !NOT_COPIED.has(src.slice(REPO_ROOT.length + 1).split("/")[0]!) });
  symlinkSync(join(REPO_ROOT, "node_modules"), join(checkout, "node_modules")); // typescript for prepack
  const packDir = join(dir, "pack");
  mkdirSync(packDir);
  const out = ok(run("npm", ["pack", "--json", "--pack-destination", packDir], checkout), "npm pack");
  pack = (JSON.parse(out.slice(out.indexOf("[\n"))) as PackResult[])[0]!;

  installDir = join(dir, "app");
  mkdirSync(installDir);
  writeFileSync(join(installDir, "package.json"), `${JSON.stringify({ name: "af-package-test", private: true, type: "module" })}\n`);
  const tarball = join(packDir, pack.filename);
  const t0 = Date.now();
  for (const mode of ["--offline", "--prefer-offline"]) {
    const r = run("npm", ["install", mode, "--no-audit", "--no-fund", tarball], installDir);
    installMode = mode;
    if (r.status === 0 || !/ENOTCACHED/.test(r.stderr)) {
      ok(r, `npm install ${mode} ${pack.filename}`);
      break;
    }
  }
  installSeconds = (Date.now() - t0) / 1000;
});

after(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

test("the tarball holds the compiled library, the CLI and the addon's sources, and no tests, benchmarks or builds", { skip }, (t) => {
  const paths = pack.files.map((f) => f.path);
  t.diagnostic(`${pack.filename}: ${pack.size} bytes packed, ${pack.unpackedSize} unpacked, ${pack.entryCount} files`);
  for (const p of [
    "package.json", "README.md", "LICENSE", "bin/activeflow.js", "dist/src/index.js", "dist/src/index.d.ts",
    "dist/src/cli/main.js", "scripts/build-native.mjs", "native/addon/addon.cpp", "native/include/activeflow/kernels.h",
    "data/calibration/SmolLM2-135M-Instruct.Q4_1.gguf.calibration.json", "python/activeflow_distill/__main__.py",
    "python/requirements.txt", "docs/FLASH_FORMAT.md",
  ]) {
    assert.ok(paths.includes(p), `${p} missing from the tarball`);
  }
  const stray = paths.filter((p) => /^(test|bench|build|src|dist\/test|dist\/bench)\//.test(p) || p.endsWith(".map"));
  assert.deepEqual(stray, []);
});

test("the installed package's CLI writes a tiny model and generates 4 tokens from it", { skip }, (t) => {
  t.diagnostic(`npm install ${installMode}: ${installSeconds.toFixed(1)} s, including the addon's compile`);
  assert.ok(existsSync(join(installDir, "node_modules", "activeflow", "build", "Release", "activeflow.node")), "addon not built at install");
  const env = npmEnv({ ACTIVEFLOW_CACHE: join(dir, "cache") });
  ok(run("npx", ["--no", "activeflow", "synth", "--shape", "tiny", "tiny.gguf"], installDir, env), "activeflow synth");
  const out = ok(run("npx", ["--no", "activeflow", "run", "tiny.gguf", "-p", "hello", "-n", "4", "--greedy", "--json"], installDir, env), "activeflow run");
  const j = JSON.parse(out.trimEnd().split("\n").at(-1)!) as { generated_tokens: number; tokens: number[] };
  assert.equal(j.generated_tokens, 4);
  assert.equal(j.tokens.length, 4);
});

test("Engine imported from the installed package generates tokens, and its types resolve", { skip }, () => {
  const script = `
    const { Engine } = await import("activeflow");
    const e = await Engine.load("tiny.gguf");
    const ids = [];
    for await (const tok of e.generate("hello", { greedy: true, maxTokens: 3, stopAtEos: false })) ids.push(tok.id);
    await e.dispose();
    console.log(JSON.stringify(ids));`;
  const out = ok(run(process.execPath, ["--input-type=module", "-e", script], installDir), "import('activeflow')");
  const ids = JSON.parse(out.trim()) as number[];
  assert.equal(ids.length, 3);
  assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0));

  // A TypeScript user's view: the "types" export and the .d.ts files it reaches.
  writeFileSync(join(installDir, "use.ts"), [
    'import { Engine, type GeneratedToken } from "activeflow";',
    'const e: Engine = await Engine.load("tiny.gguf");',
    "const first: IteratorResult<GeneratedToken, unknown> = await e.generate(\"hi\", { maxTokens: 1 }).next();",
    "console.log(first.done);",
    "",
  ].join("\n"));
  const tsc = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");
  ok(run(process.execPath, [tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
    "--skipLibCheck", "--typeRoots", join(REPO_ROOT, "node_modules", "@types"), "--types", "node", "use.ts"], installDir), "tsc on a consumer");
});

test("the install script names the missing compiler in one line, without a stack trace", { skip }, () => {
  const script = join(installDir, "node_modules", "activeflow", "scripts", "build-native.mjs");
  // $CXX set to a compiler that does not exist.
  let r = run(process.execPath, [script, "--force"], installDir, npmEnv({ CXX: "/nonexistent/g++" }));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^error: activeflow needs a C\+\+17 compiler .* \$CXX \(\/nonexistent\/g\+\+\) was not found: install g\+\+ \(Debian\/Ubuntu: apt install g\+\+;.*\n$/);
  // No g++ on PATH (only node).
  const bin = join(dir, "only-node");
  mkdirSync(bin, { recursive: true });
  if (!existsSync(join(bin, "node"))) symlinkSync(process.execPath, join(bin, "node"));
  const env = npmEnv({ PATH: bin });
  delete env.CXX;
  r = run(join(bin, "node"), [script, "--force"], installDir, env);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^error: activeflow needs a C\+\+17 compiler to build its native addon, and g\+\+ was not found: .*apt install g\+\+.*\n$/);
});
