// Adaptive budget, demo 2: the memory-pressure watcher under a real squeeze. The engine
// generates from a 1B random-weight model (flash layout, Q4_0 columns) inside a cgroup memory
// limit; once its cache is full another process in the same cgroup allocates memory step by
// step, holds it, then exits. With --watch-memory the engine halves its cache under pressure
// and survives, growing back after; without it (same setup) we report what happens.
// Usage: npx tsx bench/squeeze.ts [--model <gguf>] [--dram 50%] [--allowance-mb 160]
//        [--hog-mb 256] [--hog-step-mb 8] [--hog-every-ms 250] [--hog-hold-s 15] [-n 48]
//        [--modes watch,nowatch]     (root: creates a memory cgroup)
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { modelsDir } from "../src/fetch/cache.js";
import { parseBudget, resolveBudget } from "../src/memory/budget.js";
import { loadCalibration, saveCalibration } from "../src/sparsity/store.js";
import { MemoryCgroup, dropCaches, findCgroup, removeParent, type CgroupKind } from "./lib/budgetCgroup.js";
import { prepareModel } from "./lib/budgetRun.js";
import { inGroup, limitHits, peakOf, usageOf } from "./lib/cgroupControl.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { lines } from "./lib/lines.js";

const MiB = 1 << 20;
const PARENT = "activeflow-squeeze";
const PROMPT_IDS = "The quick brown fox jumps over the lazy dog";

interface Args {
  model: string; dram: string; allowanceMiB: number; hogMiB: number; hogStepMiB: number; hogEveryMs: number; hogHoldS: number;
  tokens: number; sparsity: number; modes: string[]; hogAfterS: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    model: join(modelsDir(), "synth-1b-q4_0.gguf"), dram: "50%", allowanceMiB: 160, hogMiB: 256, hogStepMiB: 8, hogEveryMs: 250,
    hogHoldS: 15, tokens: 48, sparsity: 0.5, modes: ["watch", "nowatch"], hogAfterS: 4,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => argv[++i] ?? (() => { throw new Error(`${k} needs a value`); })();
    if (k === "--model") a.model = v();
    else if (k === "--dram") a.dram = v();
    else if (k === "--allowance-mb") a.allowanceMiB = Number(v());
    else if (k === "--hog-mb") a.hogMiB = Number(v());
    else if (k === "--hog-step-mb") a.hogStepMiB = Number(v());
    else if (k === "--hog-every-ms") a.hogEveryMs = Number(v());
    else if (k === "--hog-hold-s") a.hogHoldS = Number(v());
    else if (k === "--hog-after-s") a.hogAfterS = Number(v());
    else if (k === "-n") a.tokens = Number(v());
    else if (k === "--sparsity") a.sparsity = Number(v());
    else if (k === "--modes") a.modes = v().split(",");
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

// The memory hog: touches `step` MiB every `every` ms up to `max` MiB, holds, exits.
const HOG = `
const [max, step, every, hold] = process.argv.slice(1).map(Number);
const held = [];
let mb = 0;
const t = setInterval(() => {
  if (mb >= max) { clearInterval(t); console.log("hog: holding " + mb + " MiB"); setTimeout(() => { console.log("hog: done"); process.exit(0); }, hold * 1000); return; }
  held.push(Buffer.alloc(step << 20, 1)); mb += step; console.log("hog: " + mb + " MiB");
}, every);
`;

interface Event { t: number; who: "engine" | "hog" | "harness"; line: string }

interface ModeResult {
  mode: string;
  argv: string[];
  limitBytes: number;
  engine: { exitCode: number | null; signal: string | null; status: string; generatedTokens: number | undefined; statsLine: string | undefined; flashLine: string | undefined };
  hog: { exitCode: number | null; signal: string | null; reachedMiB: number };
  cgroup: { peakBytes: number | undefined; limitHits: number | undefined; oomKills: number | undefined; anonMaxBytes: number; fileMaxBytes: number };
  watcherChanges: string[];
  samples: { t: number; usageMiB: number; anonMiB: number; fileMiB: number }[];
  events: Event[];
  wallSeconds: number;
}

const closed = (c: ChildProcess) => new Promise<[number | null, NodeJS.Signals | null]>((r) => c.on("close", (code, sig) => r([code, sig])));

async function runMode(kind: CgroupKind, a: Args, converted: string, limitBytes: number, mode: string): Promise<ModeResult> {
  dropCaches();
  const g = MemoryCgroup.create(kind, PARENT, mode, limitBytes);
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0) / 1000;
  const events: Event[] = [];
  const log = (who: Event["who"], line: string) => {
    events.push({ t: now(), who, line });
    process.stderr.write(`  [${mode} ${now().toFixed(1)}s ${who}] ${line}\n`);
  };
  const cli = ["run", converted, "-p", PROMPT_IDS, "-n", String(a.tokens), "--dram", a.dram, "--sparsity", String(a.sparsity), "--greedy", ...(mode === "watch" ? ["--watch-memory"] : [])];
  const [cmd, args] = inGroup(g, [process.execPath, join(repoRoot(), "bin/activeflow.js"), ...cli]);
  const engine = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let statsLine: string | undefined, flashLine: string | undefined, firstOutput = false;
  const watcherChanges: string[] = [];
  engine.stdout!.setEncoding("utf8").on("data", () => {
    if (!firstOutput) log("engine", "first token");
    firstOutput = true;
  });
  lines(engine.stderr!, (l) => {
    if (l.startsWith("stats:")) statsLine = l;
    else if (l.startsWith("flash:")) flashLine = l;
    if (l.startsWith("memory watcher:")) watcherChanges.push(`${now().toFixed(1)}s ${l}`);
    if (!l.startsWith("flash:")) log("engine", l);
  });
  const engineDone = closed(engine);
  let engineExited = false;
  void engineDone.then(() => (engineExited = true));

  // The hog starts a few seconds after the first token, when the cache has filled.
  let hogReached = 0;
  let hog: ChildProcess | undefined;
  const hogStart = (async () => {
    while (!firstOutput && !engineExited) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, a.hogAfterS * 1000));
    if (engineExited) return undefined;
    log("harness", `starting the hog: ${a.hogStepMiB} MiB every ${a.hogEveryMs} ms up to ${a.hogMiB} MiB, held ${a.hogHoldS} s`);
    const [hc, ha] = inGroup(g, [process.execPath, "-e", HOG, String(a.hogMiB), String(a.hogStepMiB), String(a.hogEveryMs), String(a.hogHoldS)], 0);
    hog = spawn(hc, ha, { stdio: ["ignore", "pipe", "pipe"] });
    lines(hog.stdout!, (l) => {
      const m = /^hog: (\d+) MiB/.exec(l);
      if (m) hogReached = Number(m[1]);
      if (!m || Number(m[1]) % 64 === 0 || /holding|done/.test(l)) log("hog", l);
    });
    lines(hog.stderr!, (l) => log("hog", l));
    return closed(hog);
  })();
  const samples: ModeResult["samples"] = [];
  let anonMax = 0, fileMax = 0;
  const sampler = setInterval(() => {
    const s = g.sample();
    if (!s) return;
    anonMax = Math.max(anonMax, s.anon);
    fileMax = Math.max(fileMax, s.file);
    samples.push({ t: now(), usageMiB: Math.round(((usageOf(g) ?? 0) / MiB) * 10) / 10, anonMiB: Math.round((s.anon / MiB) * 10) / 10, fileMiB: Math.round((s.file / MiB) * 10) / 10 });
  }, 250);
  const [exitCode, signal] = await engineDone;
  log("harness", `engine exited: ${signal ?? `code ${exitCode}`}`);
  const hogClosed = await hogStart;
  if (hog && hogClosed === undefined) hog.kill("SIGKILL");
  let hogExit: [number | null, NodeJS.Signals | null] = [null, null];
  if (hog) {
    // The engine is done; the hog need not hold any longer.
    if (hog.exitCode === null && hog.signalCode === null) hog.kill("SIGTERM");
    hogExit = await (hogClosed ?? closed(hog));
  }
  clearInterval(sampler);
  const reading = g.read();
  const result: ModeResult = {
    mode, argv: cli, limitBytes,
    engine: {
      exitCode, signal,
      status: exitCode === 0 ? "completed" : signal === "SIGKILL" || (reading.oomKills ?? 0) > 0 ? "oom-killed" : `failed (${signal ?? exitCode})`,
      generatedTokens: statsLine ? Number(/\+ (\d+) generated/.exec(statsLine)?.[1]) : undefined,
      statsLine, flashLine,
    },
    hog: { exitCode: hogExit[0], signal: hogExit[1], reachedMiB: hogReached },
    cgroup: { peakBytes: peakOf(g), limitHits: limitHits(g), oomKills: reading.oomKills, anonMaxBytes: anonMax, fileMaxBytes: fileMax },
    watcherChanges, samples, events, wallSeconds: now(),
  };
  await g.remove();
  return result;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const kind = findCgroup();
  if (typeof kind === "string") throw new Error(kind);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  // Convert (Q4_0 columns kept) and calibrate once, outside any limit.
  const prep = await prepareModel({ op: "prepare", modelPath: a.model, tokensPerPrompt: 8 }, log);
  // The CLI runs the converted file as given, so its thresholds (the source's) go beside it.
  if (!(await loadCalibration(prep.convertedPath))) {
    const table = await loadCalibration(a.model);
    if (!table) throw new Error(`${a.model} has no calibration table after prepare`);
    await saveCalibration(prep.convertedPath, table);
  }
  const budget = resolveBudget(parseBudget(a.dram), prep.weightBytes);
  const limitBytes = budget + a.allowanceMiB * MiB;
  log(`model ${prep.convertedPath}: ${(prep.weightBytes / MiB).toFixed(0)} MiB of weights; budget ${a.dram} = ${(budget / MiB).toFixed(1)} MiB; cgroup limit ${(limitBytes / MiB).toFixed(1)} MiB; calibration ${prep.calibration}`);
  const results: ModeResult[] = [];
  try {
    for (const mode of a.modes) results.push(await runMode(kind, a, prep.convertedPath, limitBytes, mode));
  } finally {
    removeParent(kind, PARENT);
  }
  const out = {
    bench: "squeeze", date: new Date().toISOString(), machine: machineInfo(), model: a.model, converted: prep.convertedPath,
    weightBytes: prep.weightBytes, dram: a.dram, budgetBytes: budget, limitBytes, sparsity: a.sparsity, tokens: a.tokens,
    hog: { maxMiB: a.hogMiB, stepMiB: a.hogStepMiB, everyMs: a.hogEveryMs, holdS: a.hogHoldS, afterFirstTokenS: a.hogAfterS },
    cgroup: { version: kind.version }, results,
  };
  const dir = join(repoRoot(), "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `squeeze-${out.date.replace(/[:.]/g, "-").slice(0, 19)}Z.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(out, null, 2));
  renameSync(`${file}.tmp`, file);
  const mb = (b: number | undefined) => (b === undefined ? "-" : (b / MiB).toFixed(1));
  for (const r of results) {
    console.log(
      `${r.mode}: engine ${r.engine.status} (${r.engine.generatedTokens ?? "?"} of ${a.tokens} tokens), hog reached ${r.hog.reachedMiB} MiB (${r.hog.signal ?? `exit ${r.hog.exitCode}`}), ` +
        `cgroup peak ${mb(r.cgroup.peakBytes)} / limit ${mb(r.limitBytes)} MiB, anon max ${mb(r.cgroup.anonMaxBytes)} MiB, OOM kills ${r.cgroup.oomKills ?? "?"}, limit hits ${r.cgroup.limitHits ?? "?"}`,
    );
    for (const c of r.watcherChanges) console.log(`  ${c}`);
  }
  console.log(`wrote ${file}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
