#!/usr/bin/env node
// npm run test:asan: builds the addon with AddressSanitizer and UBSan (build/Asan) and runs the
// native-facing tests on it. Node itself is not instrumented, so the ASan runtime is preloaded;
// leak checking is off (Node frees little at exit); any UBSan report is an error.
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// The tests that reach the addon's kernels, I/O, forward pass, column store and preloading.
const TESTS = [
  "kernels", "col-kernels", "colx-kernels", "threads", "flash-io", "counters", "activation-stats", "convert",
  "swap", "split-columns", "preload", "cache-policies", "record-order", "adaptive-budget", "gemma-modes", "weight-aware",
];

const cxx = process.env.CXX ?? "g++";
const build = spawnSync(process.execPath, [join(root, "scripts", "build-native.mjs"), "--asan"], { stdio: "inherit" });
if (build.status !== 0) process.exit(build.status ?? 1);
let libasan;
try {
  libasan = execFileSync(cxx, ["-print-file-name=libasan.so"], { encoding: "utf8" }).trim();
} catch {
  console.error(`error: ${cxx} -print-file-name=libasan.so failed: the compiler's AddressSanitizer runtime is needed`);
  process.exit(1);
}
const env = {
  ...process.env,
  ACTIVEFLOW_ADDON: join(root, "build", "Asan", "activeflow.node"),
  LD_PRELOAD: libasan,
  ASAN_OPTIONS: "detect_leaks=0:abort_on_error=1",
  UBSAN_OPTIONS: "halt_on_error=1:print_stacktrace=1",
};
const files = TESTS.map((t) => join(root, "dist", "test", `${t}.test.js`));
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...files], { stdio: "inherit", env });
process.exit(r.status ?? 1);
