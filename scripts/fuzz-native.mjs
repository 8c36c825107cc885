#!/usr/bin/env node
// npm run fuzz:native: libFuzzer on the addon's parsing paths (native/fuzz/fuzz_*.cpp). Builds
// the native sources (not the Node-API binding) with clang's -fsanitize=fuzzer,address,undefined
// into build/Fuzz, replays every saved finding (test/data/fuzz-native/<target>/, each a
// regression input), then runs each target for a bounded time from a corpus seeded with tiny
// model files. A crash, a hang (> 2 s per input), an allocation over 256 MiB or an ASan/UBSan
// report is a finding: libFuzzer writes it to build/Fuzz/artifacts/<target>/ and the run fails.
//   node scripts/fuzz-native.mjs [--seconds 60] [--targets a,b] [--json out.json] [--regress-only]
// Needs clang with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev) and dist/ built.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import os from "node:os";

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "build", "Fuzz");
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
};
const seconds = Number(arg("--seconds", "60"));
const only = arg("--targets", undefined)?.split(",");
const jsonOut = arg("--json", undefined);
const regressOnly = process.argv.includes("--regress-only");

// Input size limit per target: the model target's file must hold a small model's tensors.
const MAX_LEN = { fuzz_flash_read: 32768, fuzz_model_tensors: 65536 };

async function findClang() {
  for (const c of [process.env.CLANGXX, "clang++", "clang++-16", "clang++-15", "clang++-14"].filter(Boolean)) {
    try {
      await run(c, ["--version"]);
      return c;
    } catch {
      // try the next name
    }
  }
  throw new Error("clang++ was not found: libFuzzer needs clang (Debian: apt-get install -y clang libclang-rt-14-dev)");
}

const list = (dir) => (existsSync(join(root, dir)) ? readdirSync(join(root, dir)).filter((f) => f.endsWith(".cpp")).map((f) => join(root, dir, f)) : []);
const newer = (a, b) => existsSync(a) && statSync(a).mtimeMs > b;

function newestHeader() {
  let t = statSync(fileURLToPath(import.meta.url)).mtimeMs;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith(".h")) t = Math.max(t, statSync(p).mtimeMs);
    }
  };
  walk(join(root, "native"));
  return t;
}

async function build(cxx) {
  const sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g", "-O1"];
  const common = ["-std=c++17", ...sanitize, "-pthread", `-I${join(root, "native", "include")}`, `-I${join(root, "native")}`];
  const isX86 = process.arch === "x64";
  const isas = isX86
    ? { scalar: [], avx2: ["-mavx2", "-mfma", "-mf16c"], avx512: ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"] }
    : { scalar: [] };
  const objDir = join(out, "obj");
  mkdirSync(objDir, { recursive: true });
  const header = newestHeader();
  const jobs = [];
  const objects = [];
  const compile = (src, obj, flags) => {
    objects.push(obj);
    if (newer(obj, Math.max(statSync(src).mtimeMs, header))) return;
    jobs.push(() => run(cxx, [...common, "-fsanitize=fuzzer-no-link", ...flags, "-c", src, "-o", obj], { maxBuffer: 64 << 20 }).catch((e) => {
      process.stderr.write(e.stderr || String(e));
      throw new Error(`fuzz build failed compiling ${relative(root, src)}`);
    }));
  };
  const base = (src) => src.slice(src.lastIndexOf("/") + 1, -4);
  for (const src of list("native/kernels/isa")) {
    for (const [isa, flags] of Object.entries(isas)) compile(src, join(objDir, `isa_${base(src)}_${isa}.o`), [...flags, `-DAF_ISA=${isa}`, `-DAF_ISA_${isa.toUpperCase()}=1`]);
  }
  for (const src of list("native/kernels")) compile(src, join(objDir, `k_${base(src)}.o`), isX86 ? ["-DAF_HAVE_X86=1"] : []);
  for (const src of [...list("native/model"), ...list("native/io")]) compile(src, join(objDir, `${src.includes("/io/") ? "io" : "m"}_${base(src)}.o`), []);
  let next = 0;
  const width = Math.max(1, Math.min(os.availableParallelism(), 4));
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < jobs.length) await jobs[next++]();
  }));
  const targets = list("native/fuzz").map((src) => ({ name: base(src), src })).filter((t) => only === undefined || only.includes(t.name));
  for (const t of targets) {
    const bin = join(out, t.name);
    if (newer(bin, Math.max(statSync(t.src).mtimeMs, header, ...objects.map((o) => statSync(o).mtimeMs)))) continue;
    await run(cxx, [...common, "-fsanitize=fuzzer", t.src, ...objects, "-o", bin], { maxBuffer: 64 << 20 });
  }
  return targets;
}

// Seeds: the first bytes of a tiny synthetic GGUF and of its flash conversion, so the fuzzer
// starts from real headers and records rather than from nothing.
async function seed(corpusDir) {
  if (existsSync(corpusDir) && readdirSync(corpusDir).length > 0) return;
  mkdirSync(corpusDir, { recursive: true });
  const dist = join(root, "dist", "src");
  if (!existsSync(join(dist, "synth", "synth.js"))) throw new Error("dist/ is not built: run npm run build:ts first");
  const { synthesizeModel } = await import(join(dist, "synth", "synth.js"));
  const { convertToFlash } = await import(join(dist, "flash", "convert.js"));
  const { defaultBackend } = await import(join(dist, "backends", "default.js"));
  const { GgmlType } = await import(join(dist, "gguf", "types.js"));
  const tmp = join(out, "seed-models");
  mkdirSync(tmp, { recursive: true });
  const gguf = join(tmp, "tiny.gguf");
  if (!existsSync(gguf)) await synthesizeModel("tiny", GgmlType.Q4_0, gguf, { seed: 1 });
  const flash = join(tmp, "tiny.af.gguf");
  if (!existsSync(flash)) await convertToFlash(defaultBackend(), gguf, flash, { groupSize: 1 });
  const headerLen = 64; // the structured prefix each target consumes first
  for (const [i, file] of [gguf, flash].entries()) {
    const b = readFileSync(file);
    for (const [j, [from, len]] of [[0, 8192], [b.length - 16384, 16384], [b.length >> 1, 4096]].entries()) {
      const prefix = Buffer.alloc(headerLen, (i * 7 + j * 13) & 0xff);
      writeFileSync(join(corpusDir, `seed-${i}-${j}`), Buffer.concat([prefix, b.subarray(Math.max(0, from), Math.max(0, from) + len)]));
    }
  }
}

function libfuzzer(bin, args) {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ASAN_OPTIONS: "detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS: "halt_on_error=1:print_stacktrace=1" } });
    let log = "";
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    child.on("close", (code) => resolve({ code, log }));
  });
}

async function main() {
  const cxx = await findClang();
  const t0 = Date.now();
  const targets = await build(cxx);
  console.log(`fuzz:native: built ${targets.map((t) => t.name).join(", ")} with ${cxx} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const results = [];
  let failed = false;
  for (const t of targets) {
    const bin = join(out, t.name);
    // Every saved finding first: each must now run clean.
    const regress = join(root, "test", "data", "fuzz-native", t.name);
    const inputs = existsSync(regress) ? readdirSync(regress).map((f) => join(regress, f)) : [];
    if (inputs.length > 0) {
      const r = await libfuzzer(bin, ["-timeout=2", "-malloc_limit_mb=256", ...inputs]);
      console.log(`${t.name}: ${inputs.length} regression input(s) ${r.code === 0 ? "clean" : "FAIL"}`);
      if (r.code !== 0) {
        process.stderr.write(r.log);
        failed = true;
      }
    }
    if (regressOnly) continue;
    const corpus = join(out, "corpus", t.name);
    await seed(corpus);
    const artifacts = join(out, "artifacts", t.name);
    mkdirSync(artifacts, { recursive: true });
    const r = await libfuzzer(bin, [
      corpus, `-max_total_time=${seconds}`, `-max_len=${MAX_LEN[t.name] ?? 4096}`, "-timeout=2", "-malloc_limit_mb=256",
      "-rss_limit_mb=2048", "-print_final_stats=1", `-artifact_prefix=${artifacts}/`,
    ]);
    const stat = (k) => Number(new RegExp(`stat::${k}:\\s+(\\d+)`).exec(r.log)?.[1] ?? NaN);
    const findings = readdirSync(artifacts).filter((f) => /^(crash|leak|timeout|oom|slow-unit)-/.test(f));
    const res = {
      target: t.name, seconds, exit_code: r.code, execs: stat("number_of_executed_units"), execs_per_sec: stat("average_exec_per_sec"),
      peak_rss_mb: stat("peak_rss_mb"), coverage: Number(/cov: (\d+)/.exec(r.log.split("\n").filter((l) => l.includes("cov:")).pop() ?? "")?.[1] ?? NaN),
      corpus_files: readdirSync(corpus).length, findings,
    };
    results.push(res);
    console.log(`${t.name}: ${res.execs} execs in ${seconds} s (${res.execs_per_sec}/s), coverage ${res.coverage}, corpus ${res.corpus_files}, ` +
      `${findings.length} finding(s)${findings.length ? `: ${findings.map((f) => join(relative(root, artifacts), f)).join(", ")}` : ""}`);
    if (r.code !== 0 || findings.length > 0) {
      process.stderr.write(r.log.split("\n").slice(-60).join("\n"));
      failed = true;
    }
  }
  if (jsonOut !== undefined) {
    writeFileSync(jsonOut, `${JSON.stringify({ date: new Date().toISOString(), compiler: (await run(cxx, ["--version"])).stdout.split("\n")[0], host: { cpus: os.cpus().length }, results }, null, 2)}\n`);
  }
  if (failed) process.exit(1);
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
