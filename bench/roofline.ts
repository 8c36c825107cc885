// Issue 9, item 1: the bound, measured in the same run. Measures the device's random-read
// curve on the model's own file (O_DIRECT, io_uring, sizes 4 KiB .. 4 MiB, queue depths
// 1 .. 64; every completion replaced at once by a new read, as fio's randread), the memory
// bandwidth, and for the model at each budget and sparsity the least flash time per token over
// the read strategies (exact records, runs merged across gaps, one span, the engine's
// cost-curve planner) and cache layouts (a pinned prefix or a scattered set), priced by the
// device's best measured points; against the DRAM time of the active bytes. Random activations
// (each channel active with probability 1 - sparsity): the bound of a random-weight model.
// Usage: [flash-emu run --profile ufs40 --] node dist/bench/roofline.js --model <.af.gguf>
//   [--label ufs40] [--budgets 25%,50%] [--sparsity 0.5] [--sizes 4k,...] [--qds 1,4,16,32,64]
//   [--seconds 0.5] [--out file.json]
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadAddon } from "../src/backends/native/binding.js";
import { openFlashModel } from "../src/flash/open.js";
import { readGguf } from "../src/gguf/reader.js";
import { parseBudget, resolveBudget, planFlashMemory, weightBytesOf } from "../src/memory/budget.js";
import { readModelConfig } from "../src/model/config.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { plotWith } from "./plot.js";
import { measureMemoryBandwidth } from "./lib/pipelineRoofline.js";
import { bestCurve, curveAt, readBound, STRATEGIES, type DevicePoint } from "./lib/readBound.js";
import { table } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    file: { type: "string" },
    label: { type: "string", default: "device" },
    budgets: { type: "string", default: "25%,50%" },
    sparsity: { type: "string", default: "0.5" },
    sizes: { type: "string", default: "4k,8k,16k,32k,64k,128k,256k,1m,4m" },
    qds: { type: "string", default: "1,4,16,32,64" },
    seconds: { type: "string", default: "1" },
    warmup: { type: "string", default: "0.25" },
    "context-length": { type: "string", default: "64" },
    tokens: { type: "string", default: "3" },
    out: { type: "string" },
    // Reuse the device curve and memory bandwidth of an earlier result (only the bound is computed).
    "points-from": { type: "string" },
  },
});

const log = (s: string) => process.stderr.write(s + "\n");
const size = (s: string) => {
  const m = /^(\d+)([km]?)$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * (m[2]!.toLowerCase() === "k" ? 1024 : m[2]!.toLowerCase() === "m" ? 1 << 20 : 1);
};
const f2 = (x: number) => x.toFixed(2), f3 = (x: number) => x.toFixed(3);

async function main(): Promise<void> {
  if (!args.model) throw new Error("--model <flash-layout .af.gguf> is required");
  const addon = loadAddon();
  const model = args.model, file = args.file ?? model;
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19) + "Z";
  const out = args.out ?? join(repoRoot(), "bench", "results", `roofline-${args.label}-${stamp}.json`);
  const sizes = args.sizes.split(",").map(size), qds = args.qds.split(",").map(Number), seconds = Number(args.seconds);

  // 1. The device curve, sizes outer, each point twice (up then down) and the better kept.
  const earlier = args["points-from"] ? (JSON.parse(readFileSync(args["points-from"], "utf8")) as { points: DevicePoint[]; memoryBandwidth: ReturnType<typeof measureMemoryBandwidth> }) : undefined;
  const points: DevicePoint[] = earlier ? earlier.points : [];
  for (const bytes of earlier ? [] : sizes) {
    for (const qd of qds) {
      // The probe's buffers: qd x size; cap at 256 MiB.
      if (bytes * qd > 256 << 20) continue;
      const r = await addon.probeDevice(file, { blockBytes: bytes, queueDepth: qd, seconds, warmupSeconds: Number(args.warmup) });
      if (!r.direct) throw new Error(`${file}: O_DIRECT refused; the curve would measure the page cache`);
      const p = { bytes, queueDepth: qd, bytesPerSecond: r.bytes / r.seconds, iops: r.reads / r.seconds, p50LatencyUs: r.p50LatencyUs, p99LatencyUs: r.p99LatencyUs };
      points.push(p);
      log(`${(bytes / 1024).toFixed(0).padStart(5)} KiB qd ${String(qd).padStart(2)}: ${f3(p.bytesPerSecond / 1e9)} GB/s ${(p.iops / 1e3).toFixed(1)} kIOPS p50 ${p.p50LatencyUs.toFixed(0)} us`);
    }
  }
  const memory = earlier ? earlier.memoryBandwidth : measureMemoryBandwidth();
  log(`memory bandwidth (1 thread): read ${f2(memory.readBytesPerSecond / 1e9)} GB/s`);

  // 2. The bound per budget.
  const flash = await openFlashModel(model);
  const cfg = readModelConfig(await readGguf(model));
  const weightBytes = weightBytesOf(flash);
  const io = addon.ioDefaults();
  const sparsity = Number(args.sparsity);
  const price = bestCurve(points);
  const plannerCost = curveAt(points, qds.includes(io.queueDepth) ? io.queueDepth : Math.max(...qds));
  const headBytes = flash.resident.filter((t) => t.name === "output.weight" || t.name === "token_embd.weight").reduce((n, t) => Math.max(n, t.bytes), 0);
  const bounds = [];
  for (const budget of args.budgets.split(",")) {
    const bytes = resolveBudget(parseBudget(budget), weightBytes);
    const plan = planFlashMemory(flash, cfg, Number(args["context-length"]), 1, bytes, { io, sparsity });
    for (const [layout, split] of [["prefix", "proportional"], ["scattered", "proportional"], ["prefix", "price"]] as const) {
      const r = readBound(addon, {
        flash, cacheBytes: plan.cacheBytes, activeFraction: [1 - sparsity, 1 - sparsity, 1 - sparsity, 1 - sparsity], layout, split,
        price, plannerCost, maxRead: io.maxRead, tokens: Number(args.tokens), seed: 7,
      });
      const dramSeconds = (r.activeBytesPerToken + headBytes) / memory.readBytesPerSecond;
      bounds.push({
        budget, budgetBytes: bytes, cacheBytes: plan.cacheBytes, ...r, dramSeconds,
        boundTokensPerSecond: 1 / Math.max(r.bestSeconds, dramSeconds),
        serialTokensPerSecond: 1 / (r.bestSeconds + dramSeconds),
      });
    }
  }
  const result = {
    bench: "roofline", pointsFrom: args["points-from"] ?? null, label: args.label, date: new Date().toISOString(), machine: machineInfo(), model, probedFile: file,
    weightBytes, sparsity, io, probeSeconds: seconds, points, memoryBandwidth: memory, price, plannerCost, bounds,
    note: "random activations (each channel active with probability 1 - sparsity): the bound of a random-weight model",
  };
  mkdirSync(join(out, ".."), { recursive: true });
  writeFileSync(`${out}.tmp`, JSON.stringify(result, null, 1) + "\n");
  renameSync(`${out}.tmp`, out);

  const qdCols = qds.map((q) => `qd${q} GB/s`);
  console.log(`device curve (${args.label}, ${file}):`);
  console.log(table(["size", ...qdCols], sizes.map((b) => [`${b / 1024} KiB`, ...qds.map((q) => {
    const p = points.find((x) => x.bytes === b && x.queueDepth === q);
    return p ? f3(p.bytesPerSecond / 1e9) : "-";
  })])));
  console.log(`\nbound at sparsity ${sparsity} (flash s/token by strategy; best per extent; DRAM s/token at ${f2(memory.readBytesPerSecond / 1e9)} GB/s):`);
  console.log(table(["budget", "cache", "cache MB", "needed MB", ...STRATEGIES, "best", "dram", "bound tok/s", "serial tok/s"], bounds.map((b) => [
    b.budget, `${b.layout}/${b.split}`, (b.cacheBytes / 1e6).toFixed(0), (b.neededBytesPerToken / 1e6).toFixed(0),
    ...STRATEGIES.map((s) => f3(b.secondsByStrategy[s])), f3(b.bestSeconds), f3(b.dramSeconds), f3(b.boundTokensPerSecond), f3(b.serialTokensPerSecond),
  ])));
  const png = await plotWith("plot_roofline.py", out, out.replace(/\.json$/, ".png"), log);
  console.log(`\n${out}\n${png}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
