// Trace-driven study of the hot cache and of the record layout (issue 9, items 3 and 4), on
// real SmolLM2 activations recorded by bench/traces.ts. It mirrors the engine: group size 1
// (one extent per (layer, site)), the cache split over extents in proportion to their size
// (native ColumnStore::plan_cache), record bytes from the flash layout, the cache size the
// budget planner gives at --dram 35% --sparsity 0.5, visits = the union of a pass's rows, and
// misses read as 4 KiB-aligned ranges merged across gaps (native/io/read_plan.cpp). The replay
// of today's policy is checked against the engine's own counters (trace engine35).
//
// Hot sets and record orders come from the calibration trace only; hit rates and reads are
// scored on the evaluation trace (and on wiki.test.raw, evaluation only, labelled). A
// Bernoulli trace with the calibration trace's per-channel rates but no co-activation and no
// locality in time is the control: what random-weight models look like to a cache.
//
// The work comes in parts, each saved under --work, so each can run under its own shared lock
// (minutes each); when every part is there, the result JSON and PNG are written.
//   policies: hit rates of every policy over the cache sweep, evaluation trace, warm
//   cold:     the same at the budget points, every sequence from an empty cache
//   heldout:  wiki.test.raw (evaluation only) and hot sets from longer calibration text
//   reads:    record orders from the calibration trace; bytes, reads, read size per token
//   control:  the Bernoulli trace: hit rates and reads
//
// Usage: node dist/bench/cachesim.js --traces DIR [--parts policies,cold,...] [--work DIR]
//        [--run-json run.json] [--n-ctx 192] [--out bench/results/cachesim-<date>.json] [--no-plot]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { SITES } from "../src/backend/Backend.js";

const IO = loadAddon().ioDefaults();
const IO_MAX_READ = IO.maxRead;
import { openFlashModel } from "../src/flash/open.js";
import { readGguf } from "../src/gguf/reader.js";
import { planFlashMemory, weightBytesOf } from "../src/memory/budget.js";
import { loadAddon } from "../src/backends/native/binding.js";
import type { FlashModel } from "../src/flash/open.js";
import { readModelConfig } from "../src/model/config.js";
import { Arc, BoundCache, DecayLfu, EngineLfu, Lru, StaticPlusDynamic, StaticSet } from "./lib/cachePolicies.js";
import { bernoulliTrace, capOf, globalCaps, layoutOrders, readStudy, simulate, type LayoutOrders, type Mode, type PolicySpec, type ReadRow, type Row } from "./lib/cacheReplay.js";
import { positionsOf } from "./lib/layouts.js";
import { FORMATS, geometryFor, type GeometryCase, type SimExtent } from "./lib/flashGeometry.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { readTrace, type Trace } from "./lib/traceFile.js";
import { channelCounts, rankByCount } from "./lib/traceVisits.js";
import { venvPython } from "./plot.js";

const PARTS = ["policies", "cold", "heldout", "reads", "control"] as const;
type Part = (typeof PARTS)[number];
const { values } = parseArgs({
  options: {
    traces: { type: "string" },
    work: { type: "string" },
    parts: { type: "string", default: PARTS.join(",") },
    calib: { type: "string", default: "calib" },
    "calib-alt": { type: "string", default: "calib256" },
    eval: { type: "string", default: "eval" },
    wiki: { type: "string", default: "wiki" },
    "run-json": { type: "string" },
    "n-ctx": { type: "string", default: "192" },
    out: { type: "string" },
    "no-plot": { type: "boolean", default: false },
  },
});
if (!values.traces) throw new Error("--traces DIR (written by bench/traces.js) is required");
const log = (s: string) => process.stderr.write(`${s}\n`);
const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
const traceDir = values.traces;
const work = values.work ?? join(traceDir, "cachesim-work");
mkdirSync(work, { recursive: true });

const load = (name: string): Trace | undefined => (existsSync(join(traceDir, `${name}.trace.json`)) ? readTrace(join(traceDir, name)) : undefined);
const calib = load(values.calib!);
const evalTrace = load(values.eval!);
if (!calib || !evalTrace) throw new Error(`${traceDir}: needs ${values.calib}.trace.* and ${values.eval}.trace.*`);
if (calib.header.use !== "calibration") throw new Error(`${values.calib}: use is ${calib.header.use}, expected calibration`);

// ---- geometry and the budget ----
const flash = await openFlashModel(evalTrace.header.model);
const cfg = readModelConfig(await readGguf(flash.path));
const nCtx = Number(values["n-ctx"]);
const BUDGET = 0.35, SPARSITY = evalTrace.header.sparsity;
const cases: GeometryCase[] = Object.values(FORMATS).map((f) => geometryFor(flash, cfg, f, BUDGET, nCtx, 1, SPARSITY));
const q8 = cases[0]!;
// Record bytes only scale hit bytes, and every format scales all sites alike (whole blocks of
// 32 outputs), so hit rates by cache fraction hold for every format.
const extents: SimExtent[] = q8.extents;

// ---- policies ----
const calibRates = extents.map((e) => channelCounts(calib, e.layer, e.site).map((c) => c / calib.header.rows));
const calibRank = calibRates.map(rankByCount);
const evalRank = extents.map((e) => rankByCount(channelCounts(evalTrace, e.layer, e.site)));
const HALF_LIVES = [16, 64, 256, 1024];
function specs(rank: Int32Array[], rates: Float64Array[]): PolicySpec[] {
  const globalMemo = new Map<number, Int32Array>();
  const global = (f: number) => {
    let c = globalMemo.get(f);
    if (!c) globalMemo.set(f, (c = globalCaps(extents, rates, f)));
    return c;
  };
  return [
    { name: "lfu-engine", note: "today's engine: counts restart per sequence; a miss replaces the least-used only if its count is higher", candidate: true, make: (e, c) => new EngineLfu(e.nIn, c) },
    { name: "lru", note: "least recently used", candidate: true, make: (e, c) => new Lru(e.nIn, c) },
    ...HALF_LIVES.map((h): PolicySpec => ({ name: `lfu-decay-${h}`, note: `LFU, counts halve every ${h} tokens, never restarted; admit if higher`, candidate: true, make: (e, c) => new DecayLfu(e.nIn, c, h) })),
    { name: "lfu-forever", note: "LFU over everything seen (no restart, no decay); admit if higher", candidate: true, make: (e, c) => new DecayLfu(e.nIn, c, Infinity) },
    { name: "arc", note: "ARC (Megiddo-Modha)", candidate: true, make: (e, c) => new Arc(e.nIn, c) },
    { name: "static", note: "pinned: the channels most often active in the calibration trace, each extent its share", candidate: true, make: (e, c, i) => new StaticSet(e.nIn, c, rank[i]!) },
    ...[0.5, 0.8].map((share): PolicySpec => ({
      name: `static${share * 100}+lru`, note: `${share * 100} % of every extent's slots pinned from calibration, the rest LRU`, candidate: true,
      make: (e, c, i) => new StaticPlusDynamic(e.nIn, Math.floor(share * c), rank[i]!, new Lru(e.nIn, c - Math.floor(share * c))),
    })),
    {
      name: "static80+lfu-decay-64", note: "80 % of every extent's slots pinned from calibration, the rest LFU with a 64-token half-life", candidate: true,
      make: (e, c, i) => new StaticPlusDynamic(e.nIn, Math.floor(0.8 * c), rank[i]!, new DecayLfu(e.nIn, c - Math.floor(0.8 * c), 64)),
    },
    {
      name: "static-global", note: "pinned: the channels with the highest calibration rate over all extents (the cache is not split in proportion)", candidate: true,
      caps: global, make: (e, c, i) => new StaticSet(e.nIn, c, rank[i]!),
    },
    {
      name: "global-split+lfu-decay-64", note: "the static-global split of slots over extents, contents run by LFU with a 64-token half-life", candidate: true,
      caps: global, make: (e, c) => new DecayLfu(e.nIn, c, 64),
    },
    { name: "static-hindsight", note: "ceiling: pinned from the scored trace itself (not a policy)", candidate: false, make: (e, c, i) => new StaticSet(e.nIn, c, evalRank[i]!) },
    { name: "bound", note: "ceiling for the proportional split: min(slots, active) hits per visit (not a policy)", candidate: false, make: (e, c) => new BoundCache(c) },
  ];
}
const policies = specs(calibRank, calibRates);
const candidates = policies.filter((p) => p.candidate);
const byName = new Map(policies.map((p) => [p.name, p]));

const SWEEP = [0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8];
const casePoints = cases.map((c) => c.cacheFraction);
const fractions = [...new Set([...SWEEP, ...casePoints])].sort((a, b) => a - b);
const checkFracs = [...new Set([...casePoints, 0.2, 0.3, 0.5])].sort((a, b) => a - b);
const GAPS = [0, 4096, 16384, 65536];

const pick = (rows: Row[], policy: string, f: number, mode: Mode = "warm") => rows.find((r) => r.policy === policy && r.cacheFraction === f && r.mode === mode);
const bestAt = (rows: Row[], f: number, mode: Mode = "warm") =>
  candidates.map((p) => pick(rows, p.name, f, mode)).filter((r): r is Row => r !== undefined).reduce((a, b) => (b.decodeHitRate.bytes > a.decodeHitRate.bytes + 1e-9 ? b : a));

// ---- parts ----
const partPath = (p: Part) => join(work, `${p}.json`);
const saved = <T>(p: Part): T | undefined => (existsSync(partPath(p)) ? (JSON.parse(readFileSync(partPath(p), "utf8")) as T) : undefined);
const save = (p: Part, data: unknown) => writeFileSync(partPath(p), `${JSON.stringify(data)}\n`);
const wanted = new Set(values.parts!.split(",") as Part[]);

// The engine check: today's policy replayed on a trace recorded under the real budget.
const engineTrace = load("engine35");
let engineCheck: Record<string, unknown> | null = null;
if (engineTrace?.header.engine) {
  const ec = engineTrace.header.engine;
  const f = Math.min(1, ec.cacheBytes / q8.extentBytes);
  const sim = simulate(engineTrace, "passes", extents, [byName.get("lfu-engine")!], [f], ["warm"])[0]!;
  engineCheck = { engine: ec, cacheFraction: f, simulated: sim.allCounts, identical: sim.allCounts.lookups === ec.lookups && sim.allCounts.hits === ec.hits };
  log(`engine check: engine ${ec.hits}/${ec.lookups} hits, replay ${sim.allCounts.hits}/${sim.allCounts.lookups} (${engineCheck.identical ? "identical" : "DIFFERENT"})`);
}

if (wanted.has("policies")) {
  log(`[${elapsed()}] policies: ${policies.length} x ${fractions.length} cache sizes on the evaluation trace (warm) ...`);
  save("policies", simulate(evalTrace, "passes", extents, policies, fractions, ["warm"]));
}
if (wanted.has("cold")) {
  log(`[${elapsed()}] cold: ${policies.length} x ${checkFracs.length} cache sizes, every sequence from an empty cache ...`);
  save("cold", simulate(evalTrace, "passes", extents, policies, checkFracs, ["cold"]));
}
if (wanted.has("heldout")) {
  const out: Record<string, Row[] | null> = { wiki: null, calibrationAlt: null };
  const wiki = load(values.wiki!);
  if (wiki) {
    if (wiki.header.use !== "evaluation-wiki") throw new Error(`${values.wiki}: use is ${wiki.header.use}, expected evaluation-wiki`);
    log(`[${elapsed()}] heldout: wiki.test.raw (evaluation only), rows replayed as decode tokens ...`);
    out.wiki = simulate(wiki, "rows", extents, policies.filter((p) => p.name !== "static-hindsight"), checkFracs, ["warm"]);
  }
  const alt = load(values["calib-alt"]!);
  if (alt) {
    log(`[${elapsed()}] heldout: hot sets from ${values["calib-alt"]} (${alt.header.rows} calibration rows) ...`);
    const rates = extents.map((e) => channelCounts(alt, e.layer, e.site).map((c) => c / alt.header.rows));
    const altSpecs = specs(rates.map(rankByCount), rates).filter((p) => p.candidate && (p.name.startsWith("static") || p.name.startsWith("global")));
    out.calibrationAlt = simulate(evalTrace, "passes", extents, altSpecs, checkFracs, ["warm"]);
  }
  save("heldout", out);
}
// The pinned channels of a static policy first (calibration rank), then the others in `base` order.
function pinnedFirst(p: PolicySpec, f: number, base: LayoutOrders): LayoutOrders {
  return {
    name: `pinned-first+${base.name}`,
    positions: extents.map((e, ei) => {
      const cap = capOf(p, f, e, ei), rank = calibRank[ei]!;
      const pinned = new Uint8Array(e.nIn);
      for (let k = 0; k < cap; k++) pinned[rank[k]!] = 1;
      const rest = new Int32Array(e.nIn);
      base.positions[ei]!.forEach((pos, ch) => (rest[pos] = ch));
      return positionsOf(Int32Array.from([...rank.subarray(0, cap), ...rest.filter((ch) => !pinned[ch])]));
    }),
  };
}
if (wanted.has("reads")) {
  const rows = saved<Row[]>("policies");
  if (!rows) throw new Error("the reads part needs the policies part first");
  log(`[${elapsed()}] reads: record orders from the calibration trace ...`);
  const orders = layoutOrders(calib, extents, log);
  const noCache: PolicySpec = { name: "none", note: "no cache", candidate: false, make: (e) => new StaticSet(e.nIn, 0, new Int32Array(0)) };
  const out: ReadRow[] = [];
  for (const geo of [cases[0]!, cases[1]!]) {
    const chosen = [noCache, byName.get("lfu-engine")!, byName.get(bestAt(rows, geo.cacheFraction).policy)!, byName.get("static")!, byName.get("static-global")!];
    for (const p of chosen) {
      if (out.some((r) => r.format === geo.format && r.policy === p.name)) continue;
      log(`[${elapsed()}] reads: ${geo.format} at ${(geo.cacheFraction * 100).toFixed(1)} %, ${p.name} ...`);
      const f = p.name === "none" ? 0 : geo.cacheFraction;
      // A pinned set is best stored together: its pages are never read.
      const extra = p.name.startsWith("static") ? [pinnedFirst(p, f, orders[0]!), pinnedFirst(p, f, orders[3]!)] : [];
      out.push(...readStudy("evaluation", evalTrace, [...orders, ...extra], geo.format, geo.extents, p, f, GAPS, IO_MAX_READ));
    }
  }
  save("reads", out);
}
if (wanted.has("control")) {
  log(`[${elapsed()}] control: Bernoulli traces with the calibration rates ...`);
  const bCalib = bernoulliTrace(calib, calib, extents, 99);
  const bEval = bernoulliTrace(evalTrace, calib, extents, 7);
  const bRates = extents.map((e) => channelCounts(bCalib, e.layer, e.site).map((c) => c / bCalib.header.rows));
  const bSpecs = specs(bRates.map(rankByCount), bRates).filter((p) => p.candidate || p.name === "bound");
  const hit = simulate(bEval, "passes", extents, bSpecs, checkFracs, ["warm"]);
  const orders = layoutOrders(bCalib, extents, log);
  const reads = [
    ...readStudy("control", bEval, orders, q8.format, q8.extents, { name: "none", note: "", candidate: false, make: (e) => new StaticSet(e.nIn, 0, new Int32Array(0)) }, 0, GAPS, IO_MAX_READ),
    ...readStudy("control", bEval, orders, q8.format, q8.extents, bSpecs.find((p) => p.name === "static")!, q8.cacheFraction, GAPS, IO_MAX_READ),
  ];
  save("control", { hit, reads });
}
log(`[${elapsed()}] parts done`);

// ---- assembly ----
const have = PARTS.filter((p) => existsSync(partPath(p)));
if (have.length < PARTS.length) {
  log(`parts still missing: ${PARTS.filter((p) => !have.includes(p)).join(", ")}; the result is written once all are there`);
  process.exit(0);
}
const evalRows = [...saved<Row[]>("policies")!, ...saved<Row[]>("cold")!];
const heldout = saved<{ wiki: Row[] | null; calibrationAlt: Row[] | null }>("heldout")!;
const readRows = saved<ReadRow[]>("reads")!;
const control = saved<{ hit: Row[]; reads: ReadRow[] }>("control")!;

// Cache fraction a policy needs for a 40 % decode byte hit rate (linear between sweep points).
function needed(policy: string, target: number): number | null {
  const pts = evalRows.filter((r) => r.policy === policy && r.mode === "warm").sort((a, b) => a.cacheFraction - b.cacheFraction);
  for (let i = 0; i < pts.length; i++) {
    const y = pts[i]!.decodeHitRate.bytes;
    if (y < target) continue;
    if (i === 0) return pts[0]!.cacheFraction;
    const a = pts[i - 1]!, ya = a.decodeHitRate.bytes;
    return a.cacheFraction + ((target - ya) / (y - ya)) * (pts[i]!.cacheFraction - a.cacheFraction);
  }
  return null;
}
// The smallest --dram budget (bytes and % of that format's weights, to 0.1 %) whose cache reaches
// `fraction`; with headResident, also keeping the output head in DRAM (else it streams from
// flash every token once the budget cannot hold it).
function budgetFor(geo: GeometryCase, fraction: number, headResident: boolean): { bytes: number; percent: number; headResident: boolean } {
  const model = {
    ...flash,
    resident: [...flash.resident, ...(geo.residentScaleBytes > 0 ? [{ ...flash.resident[0]!, name: "column_scales", bytes: geo.residentScaleBytes }] : [])],
    extents: geo.extents.map((e, i) => ({ ...flash.extents[i]!, recordBytes: e.recordBytes, bytes: e.nIn * e.recordBytes })),
  } as FlashModel;
  const plan = (b: number) => {
    try {
      return planFlashMemory(model, cfg, nCtx, 1, Math.floor(b), { io: IO, sparsity: SPARSITY, preload: false, groupSize: 1 });
    } catch {
      return undefined;
    }
  };
  // A scan, not a bisection: the cache shrinks where a growing budget first takes the head in.
  const weights = weightBytesOf(model);
  for (let permille = 1; permille <= 4000; permille++) {
    const b = (weights * permille) / 1000;
    const p = plan(b);
    if (p && p.cacheBytes >= fraction * geo.extentBytes && (!headResident || p.headResident)) return { bytes: Math.ceil(b), percent: permille / 10, headResident: p.headResident };
  }
  return { bytes: Infinity, percent: Infinity, headResident: false };
}

const best = bestAt(evalRows, q8.cacheFraction);
const neededFor40 = Object.fromEntries(candidates.map((p) => {
  const f = needed(p.name, 0.4);
  return [p.name, f === null ? null : {
    cacheFraction: f,
    budget: Object.fromEntries(cases.map((c) => [c.format, budgetFor(c, f, false)])),
    budgetHeadResident: Object.fromEntries(cases.map((c) => [c.format, budgetFor(c, f, true)])),
  }];
}));
let engineRun: Record<string, unknown> | undefined;
if (values["run-json"]) {
  const lines = readFileSync(values["run-json"], "utf8").trim().split("\n");
  engineRun = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}
const traceInfo = (t: Trace | undefined) =>
  t && {
    use: t.header.use, rows: t.header.rows, passes: t.header.passes.length, notes: t.header.notes,
    sequences: t.header.sequences.map((s) => ({ name: s.name, mode: s.mode, promptTokens: s.promptTokens, generatedTokens: s.generatedTokens, freshContext: s.freshContext })),
  };
const activeFraction = Object.fromEntries(SITES.map((s, si) => {
  let on = 0, all = 0;
  for (const e of extents.filter((x) => x.site === si)) {
    const counts = channelCounts(evalTrace, e.layer, e.site);
    on += counts.reduce((a, b) => a + b, 0);
    all += e.nIn * evalTrace.header.rows;
  }
  return [s, on / all];
}));
const date = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19) + "Z";
const outPath = values.out ?? join(repoRoot(), "bench", "results", `cachesim-${date}.json`);
mkdirSync(dirname(outPath), { recursive: true });
const result = {
  kind: "cachesim",
  date: new Date().toISOString(),
  machine: machineInfo(),
  conditions:
    "simulation (no timing): a CPU-bound replay of recorded traces, each part run under the shared lock (flock -s) while other helpers' builds and tests may have run; that changes run time only, not the numbers",
  model: { flash: flash.path, source: evalTrace.header.source, kind: "real weights (SmolLM2-135M-Instruct Q4_1)", sparsity: SPARSITY, calibration: evalTrace.header.calibration },
  traces: { calibration: traceInfo(calib), evaluation: traceInfo(evalTrace), wiki: traceInfo(load(values.wiki!)), calibrationAlt: traceInfo(load(values["calib-alt"]!)) },
  engine: {
    groupSize: 1, cacheSplit: "proportional to extent bytes (native plan_cache)", ioMaxRead: IO_MAX_READ, nCtx,
    measuredRun: engineRun && Object.fromEntries(Object.entries(engineRun).filter(([k]) => !["tokens", "text", "preload"].includes(k))),
  },
  engineCheck,
  geometry: cases.map((c) => ({
    format: c.format, description: c.description, recordBytes: Object.fromEntries(SITES.map((s, i) => [s, c.recordBytes[i]])),
    extentBytes: c.extentBytes, residentScaleBytes: c.residentScaleBytes, budgetBytes: c.budgetBytes, cacheFraction: c.cacheFraction, plan: c.plan,
  })),
  activeFraction: { evaluationRows: activeFraction },
  policies: policies.map((p) => ({ name: p.name, note: p.note, candidate: p.candidate })),
  at35: cases.map((c) => ({
    format: c.format, cacheFraction: c.cacheFraction, cacheBytes: c.plan.cacheBytes,
    best: bestAt(evalRows, c.cacheFraction).policy, bestCold: bestAt(evalRows, c.cacheFraction, "cold").policy,
    warm: policies.map((p) => pick(evalRows, p.name, c.cacheFraction)),
    cold: policies.map((p) => pick(evalRows, p.name, c.cacheFraction, "cold")),
    wiki: heldout.wiki ? policies.map((p) => pick(heldout.wiki!, p.name, c.cacheFraction)).filter(Boolean) : null,
  })),
  neededFor40,
  hitRates: { evaluation: evalRows, wiki: heldout.wiki, calibrationAltHotSets: heldout.calibrationAlt, control: control.hit },
  reads: readRows,
  controlReads: control.reads,
};
writeFileSync(outPath, `${JSON.stringify(result, null, 1)}\n`);
log(`[${elapsed()}] wrote ${outPath}`);

// ---- summary ----
const pct = (x: number | undefined) => (x === undefined ? "-" : (x * 100).toFixed(1));
for (const c of cases) {
  process.stdout.write(`\n${c.format}: budget ${(c.budgetBytes / 1e6).toFixed(1)} MB, cache ${(c.plan.cacheBytes / 1e6).toFixed(2)} MB = ${pct(c.cacheFraction)} % of the extents (head ${c.plan.headResident ? "resident" : "streamed"} ${(c.plan.headBytes / 1e6).toFixed(1)} MB, KV ${(c.plan.kvBytes / 1e6).toFixed(1)} MB)\n`);
  process.stdout.write(`  policy                      decode hit %: warm ch / bytes   cold bytes   wiki bytes\n`);
  for (const p of policies) {
    const w = pick(evalRows, p.name, c.cacheFraction), k = pick(evalRows, p.name, c.cacheFraction, "cold");
    const wk = heldout.wiki ? pick(heldout.wiki, p.name, c.cacheFraction) : undefined;
    process.stdout.write(`  ${p.name.padEnd(26)}  ${pct(w?.decodeHitRate.channels).padStart(5)} / ${pct(w?.decodeHitRate.bytes).padStart(5)}       ${pct(k?.decodeHitRate.bytes).padStart(5)}        ${pct(wk?.decodeHitRate.bytes).padStart(5)}\n`);
  }
}
process.stdout.write(`\nbest at ${pct(q8.cacheFraction)} % (warm): ${best.policy}; 40 % needs a cache of:\n`);
for (const [name, n] of Object.entries(neededFor40)) {
  const b = (c: GeometryCase) => `${c.format} ${n!.budget[c.format]!.percent.toFixed(0)} %${n!.budget[c.format]!.headResident ? "" : ` (head streamed; ${n!.budgetHeadResident[c.format]!.percent.toFixed(0)} % with it resident)`}`;
  process.stdout.write(`  ${name.padEnd(26)} ${n ? `${pct(n.cacheFraction)} % of the extents; --dram ${cases.map(b).join(", ")}` : "not reached"}\n`);
}
process.stdout.write(`\nreads per decode token:\n`);
for (const r of [...readRows, ...control.reads]) {
  process.stdout.write(`  ${r.trace.padEnd(10)} ${r.format.padEnd(13)} ${r.policy.padEnd(26)} ${r.layout.padEnd(19)} gap ${String(r.gap / 1024).padStart(2)}K: ${(r.bytesPerToken / 1e6).toFixed(2)} MB, ${r.readsPerToken.toFixed(0)} reads, mean ${(r.meanReadBytes / 1024).toFixed(1)} KiB (missed records ${(r.missRecordBytesPerToken / 1e6).toFixed(2)} MB)\n`);
}
if (!values["no-plot"]) {
  const py = venvPython(log);
  const png = execFileSync(py, [join(repoRoot(), "bench", "plot_cachesim.py"), outPath, outPath.replace(/\.json$/, ".png")], { encoding: "utf8" });
  log(`wrote ${png.trim()}`);
}
