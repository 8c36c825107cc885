#!/usr/bin/env node
// Builds the native addon with the system C++ compiler and the Node-API headers from npm.
// No node-gyp: it would try to download Node headers, and nothing here may download.
//
// Layout convention:
//   native/kernels/isa/*.cpp  compiled once per ISA (scalar, avx2, avx512) with
//                             -DAF_ISA=<name> and that ISA's flags; runtime dispatch picks one.
//   native/kernels/*.cpp      compiled once, baseline x86-64 flags.
//   native/model/*.cpp        compiled once, baseline flags: the forward pass (plain C++).
//   native/io/*.cpp           compiled once, baseline flags: flash I/O (plain C++).
//   native/addon/*.cpp        compiled once, baseline flags, with node-addon-api.
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import os from "node:os";

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const napiHeaders = dirname(require.resolve("node-api-headers/include/node_api.h"));
const addonApi = dirname(require.resolve("node-addon-api/napi.h"));
// --asan: an AddressSanitizer + UBSan build beside the release one (npm run test:asan).
const asan = process.argv.includes("--asan");
const out = join(root, "build", asan ? "Asan" : "Release", "activeflow.node");
const objDir = join(root, "build", asan ? "obj-asan" : "obj");
const sanitize = asan ? ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"] : [];
const cxx = process.env.CXX ?? "g++";
const isX86 = process.arch === "x64";

const ISAS = isX86
  ? {
      scalar: [],
      avx2: ["-mavx2", "-mfma", "-mf16c"],
      avx512: ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"],
    }
  : { scalar: [] };

const common = [
  "-std=c++17", asan ? "-O1" : "-O3", ...sanitize, "-fPIC", "-fno-math-errno", "-fvisibility=hidden", "-Wall", "-Wextra",
  "-Wno-unused-parameter", "-pthread",
  `-I${join(root, "native", "include")}`, `-I${join(root, "native")}`,
];
const baseline = isX86 ? ["-march=x86-64", "-mtune=generic"] : [];

function list(dir) {
  const full = join(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full).filter((f) => f.endsWith(".cpp")).map((f) => join(full, f));
}

function newestOf(filter) {
  let newest = statSync(fileURLToPath(import.meta.url)).mtimeMs;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (filter(p)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(root, "native"));
  return newest;
}
const newestInput = () => newestOf(() => true);
const force = process.argv.includes("--force");

async function pool(jobs, width) {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      await job();
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}

// Run at `npm install` of the package too, so a missing compiler must read as one plain line.
async function checkCompiler() {
  try {
    await run(cxx, ["--version"]);
  } catch (e) {
    if (e.code !== "ENOENT") return; // it exists; a real failure shows when compiling
    const which = process.env.CXX === undefined ? "g++" : `$CXX (${cxx})`;
    throw new Error(
      `activeflow needs a C++17 compiler to build its native addon, and ${which} was not found: ` +
        "install g++ (Debian/Ubuntu: apt install g++; Fedora: dnf install gcc-c++) or set $CXX to one, then reinstall",
    );
  }
}

async function main() {
  if (existsSync(out) && statSync(out).mtimeMs > newestInput() && !force) {
    console.log(`native: up to date (${relative(root, out)})`);
    return;
  }
  await checkCompiler();
  mkdirSync(objDir, { recursive: true });
  mkdirSync(dirname(out), { recursive: true });
  const objects = [];
  const jobs = [];
  // Incremental: an object is rebuilt when its source, any header, or this script is newer.
  const newestHeader = newestOf((p) => p.endsWith(".h"));
  const compile = (src, obj, flags) => {
    objects.push(obj);
    if (!force && existsSync(obj)) {
      const t = statSync(obj).mtimeMs;
      if (t > statSync(src).mtimeMs && t > newestHeader) return;
    }
    jobs.push(async () => {
      try {
        await run(cxx, [...common, ...flags, "-c", src, "-o", obj], { maxBuffer: 64 << 20 });
      } catch (e) {
        process.stderr.write(e.stderr || String(e));
        throw new Error(`native build failed compiling ${relative(root, src)}`);
      }
    });
  };
  for (const src of list("native/kernels/isa")) {
    for (const [isa, flags] of Object.entries(ISAS)) {
      const base = src.slice(src.lastIndexOf("/") + 1, -4);
      compile(src, join(objDir, `isa_${base}_${isa}.o`), [...baseline, ...flags, `-DAF_ISA=${isa}`, `-DAF_ISA_${isa.toUpperCase()}=1`]);
    }
  }
  for (const src of list("native/kernels")) {
    const base = src.slice(src.lastIndexOf("/") + 1, -4);
    compile(src, join(objDir, `k_${base}.o`), [...baseline, ...(isX86 ? ["-DAF_HAVE_X86=1"] : [])]);
  }
  for (const src of list("native/model")) {
    const base = src.slice(src.lastIndexOf("/") + 1, -4);
    compile(src, join(objDir, `m_${base}.o`), baseline);
  }
  for (const src of list("native/io")) {
    const base = src.slice(src.lastIndexOf("/") + 1, -4);
    compile(src, join(objDir, `io_${base}.o`), baseline);
  }
  for (const src of list("native/addon")) {
    const base = src.slice(src.lastIndexOf("/") + 1, -4);
    compile(src, join(objDir, `a_${base}.o`), [
      ...baseline, `-I${napiHeaders}`, `-I${addonApi}`, "-DNAPI_VERSION=8", "-DNODE_ADDON_API_CPP_EXCEPTIONS",
      "-DNODE_ADDON_API_DISABLE_DEPRECATED", "-fexceptions",
    ]);
  }
  const t0 = Date.now();
  await pool(jobs, Math.max(1, Math.min(os.availableParallelism(), 4)));
  const tmp = `${out}.tmp-${process.pid}`;
  await run(cxx, ["-shared", "-pthread", ...sanitize, "-o", tmp, ...objects, "-Wl,--no-undefined", "-Wl,--unresolved-symbols=ignore-in-object-files"], { maxBuffer: 64 << 20 });
  renameSync(tmp, out);
  console.log(`native: built ${relative(root, out)} from ${objects.length} objects in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
