// Run-time DRAM budget: setDramBudget between and during generations, the --dram-schedule
// parser, the memory-pressure parsers and policy, and the watcher driving the engine. On a
// small synthetic model: the budget changes what is cached, never the tokens.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import type { GenerateOptions, GenerationStats, LoadOptions } from "../src/engine/types.js";
import { SWAP_THREADS_DEFAULT } from "../src/engine/types.js";
import { convertToFlash } from "../src/flash/convert.js";
import { GgmlType } from "../src/gguf/types.js";
import { fmt } from "../src/memory/budget.js";
import {
  DEFAULT_POLICY, decide, initialState, MemoryPressureWatcher, parseKeyed, parseLimit, parseProcCgroup, parsePsi, retarget,
  type PressureSample, type PressureState,
} from "../src/memory/pressure.js";
import { entryAt, parseDramSchedule } from "../src/memory/schedule.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { saveCalibration } from "../src/sparsity/store.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { runCli } from "./helpers/cli.js";
import { defaultBackend } from "../src/backends/default.js";

const CTX = 64;
const SPARSITY = 0.5;
const MiB = 1 << 20;
const PROMPT = [1, 17, 300, 42, 99, 7, 256, 3];
const SAMPLING: GenerateOptions = { temperature: 0.9, topK: 40, seed: 1234, stopAtEos: false };

let dir = "";
// "small" (dim 256, ffn 768, 2 layers) F32, one layer per group: ~6 MiB of extents, so a
// budget near the minimum evicts and a large one caches everything.
let flash = "";
let min = 0;
let engineBytes = 0; // the engine's own memory, charged before the cache (memory/budget.ts)

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-adaptive-"));
  const gguf = join(dir, "small-f32.gguf");
  flash = join(dir, "small-f32.af.gguf");
  await synthesizeModel("small", GgmlType.F32, gguf, { seed: 3 });
  await convertToFlash(defaultBackend(), gguf, flash, { groupSize: 1 });
  const e = await Engine.load(flash, { contextLength: CTX, threads: SWAP_THREADS_DEFAULT });
  try {
    await saveCalibration(flash, await calibrate(e, { text: "The quick brown fox jumps over the lazy dog. ".repeat(12) }));
    min = e.plan!.minimumBytes;
    engineBytes = e.plan!.engineBytes;
  } finally {
    await e.dispose();
  }
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

async function withEngine<T>(options: LoadOptions, fn: (e: Engine) => Promise<T>): Promise<T> {
  const e = await Engine.load(flash, { contextLength: CTX, sparsity: SPARSITY, ...options });
  try {
    return await fn(e);
  } finally {
    await e.dispose();
  }
}

// Drains a generation; `onToken(i)` runs after token i arrives (while the generator waits).
async function drain(e: Engine, maxTokens: number, onToken?: (i: number) => void): Promise<{ ids: number[]; stats: GenerationStats }> {
  const gen = e.generate(PROMPT, { ...SAMPLING, maxTokens });
  const ids: number[] = [];
  for (;;) {
    const r = await gen.next();
    if (r.done === true) return { ids, stats: r.value };
    ids.push(r.value.id);
    onToken?.(ids.length - 1);
  }
}

const HIGH = () => min + engineBytes + 16 * MiB; // caches every column
let low = 0; // the engine's run-time minimum + 256 KiB (set by the first test)
const LOW = () => low;

test("a budget that drops and comes back mid-generation gives the fixed-budget run's tokens", async () => {
  const fixed = await withEngine({ dram: HIGH() }, (e) => drain(e, 24));
  const changed = await withEngine({ dram: HIGH() }, async (e) => {
    low = e.dramMinimum + 256 * 1024;
    const highCache = e.flashStats()!.cacheBytes;
    const r = await drain(e, 24, (i) => {
      if (i === 7) e.setDramBudget(LOW()); // applies before token 8 is computed
      if (i === 15) e.setDramBudget(HIGH());
    });
    return { ...r, highCache };
  });
  assert.deepEqual(changed.ids, fixed.ids);
  const h = changed.stats.flash!.budgetHistory!;
  assert.deepEqual(h.map((x) => [x.atToken, x.budgetBytes, x.source]), [[null, HIGH(), "load"], [8, LOW(), "api"], [16, HIGH(), "api"]]);
  assert.ok(h[1]!.cacheBytes < changed.highCache / 4, `low phase cache ${h[1]!.cacheBytes} vs ${changed.highCache}`);
  assert.equal(h[2]!.cacheBytes, changed.highCache, "growing back restores the load plan's cache");
  assert.ok(changed.stats.flash!.flashBytesRead > fixed.stats.flash!.flashBytesRead, "the low phase missed its cache and read more");
  assert.equal(changed.stats.flash!.dramBudgetBytes, HIGH());
});

test("setDramBudget during a token's computation waits for the next token boundary", async () => {
  await withEngine({ dram: HIGH() }, async (e) => {
    const gen = e.generate(PROMPT, { ...SAMPLING, maxTokens: 6 });
    await gen.next(); // token 0
    const pending = gen.next(); // token 1 is being computed in native now
    e.setDramBudget(LOW()); // must not touch the cache mid-pass
    assert.equal(e.dramBudget, LOW());
    await pending;
    let r;
    while (!(r = await gen.next()).done);
    const h = r.value.flash!.budgetHistory!;
    assert.deepEqual(h.map((x) => x.atToken), [null, 2]);
    assert.equal(r.value.flash!.cacheBytes, h[1]!.cacheBytes);
  });
});

test("a percentage budget is of the model file given, at load and at run time", async () => {
  const size = (await stat(flash)).size;
  await withEngine({ dram: "150%" }, async (e) => {
    assert.equal(e.dramBudget, Math.floor(size * 1.5));
    assert.equal(e.setDramBudget("130%"), Math.floor(size * 1.3));
  });
});

test("setDramBudget below the minimum throws the planner's BUDGET_TOO_SMALL and the engine keeps its budget", async () => {
  await withEngine({ dram: HIGH() }, async (e) => {
    const before = e.flashStats()!.cacheBytes;
    assert.throws(
      () => e.setDramBudget(min - 1),
      (err: unknown) => isActiveflowError(err) && err.code === "BUDGET_TOO_SMALL" && err.message.includes(`minimum of ${fmt(min)}`),
    );
    assert.throws(() => e.setDramBudget("1%"), (err: unknown) => isActiveflowError(err) && err.code === "BUDGET_TOO_SMALL");
    assert.throws(() => e.setDramBudget("lots"), (err: unknown) => isActiveflowError(err) && err.code === "BAD_ARGUMENT");
    assert.equal(e.dramBudget, HIGH());
    assert.equal(e.flashStats()!.cacheBytes, before);
    const { ids } = await drain(e, 4);
    assert.equal(ids.length, 4);
    // Above the planner's minimum but below what the engine holds besides its cache as loaded
    // (head, preload buffers): refused with the run-time minimum.
    const floor = e.dramMinimum;
    assert.ok(floor >= min);
    if (floor > min) {
      assert.throws(() => e.setDramBudget(floor - 1), (err: unknown) => isActiveflowError(err) && err.code === "BUDGET_TOO_SMALL" && err.message.includes(`run-time minimum of ${fmt(floor)}`));
    }
    // Exactly the minimum is accepted (the cache is then empty).
    assert.equal(e.setDramBudget(floor), floor);
    assert.ok(e.flashStats()!.cacheBytes < e.plan!.cacheBytes / 4);
  });
});

test("setDramBudget needs a flash-layout model", async () => {
  const gguf = join(dir, "small-f32.gguf");
  const e = await Engine.load(gguf, { contextLength: CTX });
  try {
    assert.throws(() => e.setDramBudget("50%"), /setDramBudget needs a model loaded with a DRAM budget/);
  } finally {
    await e.dispose();
  }
});

test("the schedule parser accepts TOKEN:BUDGET lists and names the bad entry", () => {
  assert.deepEqual(parseDramSchedule("0:60%, 32:20%,64:512MB"), [
    { token: 0, budget: "60%" }, { token: 32, budget: "20%" }, { token: 64, budget: "512MB" },
  ]);
  assert.equal(entryAt(parseDramSchedule("0:60%,32:20%"), 32)?.budget, "20%");
  assert.equal(entryAt(parseDramSchedule("0:60%,32:20%"), 31), undefined);
  const bad: [string, RegExp][] = [
    ["", /is empty; expected TOKEN:BUDGET/],
    ["0:60%,32", /entry 2 "32" has no ":"/],
    ["0:60%,x:20%", /entry 2 "x:20%": the token index "x" is not a non-negative integer/],
    ["-1:20%", /entry 1 "-1:20%": the token index "-1"/],
    ["0:60%,32:lots", /entry 2 "32:lots": the budget "lots" is not bytes/],
    ["0:60%,32:0%", /entry 2 "32:0%": the budget "0%"/],
    ["0:60%,32:20%,32:60%", /entry 3 "32:60%": token 32 does not come after the previous entry's 32/],
    ["0:60%,,4:1GB", /entry 2 "" has no ":"/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => parseDramSchedule(text), (e: unknown) => isActiveflowError(e) && e.code === "BAD_ARGUMENT" && re.test(e.message), text);
  }
});

// ---- Pressure: parsers on sample texts ----

test("pressure file parsers read PSI, keyed files, limits and /proc/self/cgroup", () => {
  const psi = parsePsi("some avg10=1.50 avg60=0.25 avg300=0.00 total=129948522\nfull avg10=0.75 avg60=0.00 avg300=0.00 total=58574632\n");
  assert.deepEqual(psi.some, { avg10: 1.5, avg60: 0.25, avg300: 0, totalUs: 129948522 });
  assert.equal(psi.full?.totalUs, 58574632);
  assert.equal(parsePsi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5").full, undefined);
  assert.throws(() => parsePsi("some avg10=x"), /unexpected line "some avg10=x"/);
  assert.throws(() => parsePsi(""), /no "some" line/);

  const events = parseKeyed("low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n");
  assert.equal(events.get("oom_kill"), 1);
  assert.equal(events.get("max"), 3);
  const oomControl = parseKeyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  assert.equal(oomControl.get("oom_kill"), 2);
  const stat = parseKeyed("cache 1048576\nrss 2097152\ntotal_inactive_file 524288\n");
  assert.equal(stat.get("total_inactive_file"), 524288);

  assert.equal(parseLimit("max\n"), Infinity);
  assert.equal(parseLimit("9223372036854771712\n"), Infinity); // v1 "no limit"
  assert.equal(parseLimit("268435456\n"), 268435456);
  assert.throws(() => parseLimit("lots"), /expected a byte count or "max", got "lots"/);

  assert.deepEqual(parseProcCgroup("9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n"), { v1Memory: "/process_api/abc", v2: "/" });
  assert.deepEqual(parseProcCgroup("0::/user.slice/app.scope\n"), { v1Memory: undefined, v2: "/user.slice/app.scope" });
  assert.deepEqual(parseProcCgroup("5:cpu,memory:/a\n"), { v1Memory: "/a", v2: undefined });
});

// ---- Pressure: the policy on fake readings ----

const policy = { ...DEFAULT_POLICY, calmMs: 1000, cooldownMs: 500, minStepBytes: MiB };
const cg = (atMs: number, workingSetMiB: number, limitMiB = 100, oomKills = 0): PressureSample => ({
  atMs, cgroup: { workingSetBytes: workingSetMiB * MiB, limitBytes: limitMiB * MiB, oomKills },
});
const psiAt = (atMs: number, someTotalUs: number, fullAvg10 = 0): PressureSample => ({
  atMs, psi: { someAvg10: 0, fullAvg10, someTotalUs, fullTotalUs: 0 },
});

function run(state: PressureState, samples: PressureSample[]): { state: PressureState; sizes: number[] } {
  const sizes: number[] = [];
  for (const s of samples) {
    const d = decide(state, s, policy);
    state = d.state;
    sizes.push(state.cacheBytes / MiB);
  }
  return { state, sizes };
}

test("policy: halves the cache above the high-water mark (or frees down to the low-water mark, if more; once per cooldown), grows back after calm, up to the low-water room", () => {
  const { sizes } = run(initialState(64 * MiB), [
    cg(0, 50), // calm, at target
    cg(100, 95), // pressure: 64 -> 32
    cg(200, 95), // still pressure, inside the cooldown: hold
    cg(700, 93), // cooldown over: 93 - 75 = 18 MiB over the low-water mark, more than half: 32 -> 14
    cg(800, 60), // calm starts
    cg(1500, 60), // calm 0.7 s: hold
    cg(1800, 60), // calm 1.0 s: double to 28 (the room to 75 % of 100 MiB is 15 MiB: 29)
    cg(2000, 74), // calm again, the clock restarted at 1800
    cg(2800, 74), // 1.0 s: room 1 MiB -> 29
    cg(3800, 40), // 1.0 s, plenty of room: double, 58
    cg(9000, 40), // the target, 64
  ]);
  assert.deepEqual(sizes, [64, 32, 32, 14, 14, 14, 28, 28, 29, 58, 64]);
});

test("policy: PSI stall share and full avg10 count as pressure; an OOM kill too; small caches drop to zero", () => {
  // 20 % of 1 s stalled -> pressure; 5 % -> not.
  let d = decide({ ...initialState(8 * MiB), prev: psiAt(0, 1_000_000) }, psiAt(1000, 1_200_000), policy);
  assert.match(d.change?.reason ?? "", /memory stall 20% of the last 1000 ms/);
  assert.equal(d.state.cacheBytes, 4 * MiB);
  d = decide({ ...initialState(8 * MiB), prev: psiAt(0, 1_000_000) }, psiAt(1000, 1_050_000), policy);
  assert.equal(d.change, undefined);
  d = decide(initialState(8 * MiB), psiAt(0, 0, 12.5), policy);
  assert.match(d.change?.reason ?? "", /PSI full avg10 12.50%/);
  d = decide({ ...initialState(8 * MiB), prev: cg(0, 10, 100, 0) }, cg(100, 10, 100, 1), policy);
  assert.match(d.change?.reason ?? "", /OOM kill/);
  // 1.5 MiB halves below the 1 MiB step: dropped to 0, and 0 stays 0 under pressure.
  d = decide({ ...initialState(3 * MiB), cacheBytes: 1.5 * MiB }, cg(0, 99), policy);
  assert.equal(d.state.cacheBytes, 0);
  d = decide({ ...d.state, lastShrinkMs: undefined }, cg(5000, 99), policy);
  assert.equal(d.change, undefined);
});

test("policy: above the emergency mark the cooldown is skipped", () => {
  const justShrunk = { ...initialState(64 * MiB), cacheBytes: 32 * MiB, lastShrinkMs: 0 };
  assert.equal(decide(justShrunk, cg(100, 95), policy).change, undefined, "95 % inside the cooldown: hold");
  assert.equal(decide(justShrunk, cg(100, 98), policy).state.cacheBytes, 9 * MiB, "98 %: shrink at once, by the 23 MiB over the low-water mark");
});

test("policy: a growth step below minStepBytes is skipped (each resize drops the cache), except from an empty cache", () => {
  const near = { ...initialState(64 * MiB), cacheBytes: 64 * MiB - 4096, calmSinceMs: 0 };
  assert.equal(decide(near, cg(5000, 10), policy).change, undefined);
  const empty = { ...initialState(MiB / 2), cacheBytes: 0, calmSinceMs: 0 };
  assert.equal(decide(empty, cg(5000, 10), policy).state.cacheBytes, MiB / 2);
});

test("policy: a new budget is followed when no reduction is in force, else caps the reduction", () => {
  assert.equal(retarget(initialState(64 * MiB), 16 * MiB).cacheBytes, 16 * MiB);
  assert.equal(retarget(initialState(16 * MiB), 64 * MiB).cacheBytes, 64 * MiB);
  const reduced = { ...initialState(64 * MiB), cacheBytes: 8 * MiB };
  assert.equal(retarget(reduced, 128 * MiB).cacheBytes, 8 * MiB);
  assert.equal(retarget(reduced, 4 * MiB).cacheBytes, 4 * MiB);
});

test("the watcher reports each change of the allowed cache size", () => {
  const readings = [cg(0, 50), cg(100, 95), cg(2000, 95), cg(2100, 20), cg(3200, 20)];
  const seen: number[] = [];
  const w = new MemoryPressureWatcher(40 * MiB, (bytes) => seen.push(bytes / MiB), { read: () => readings.shift()!, policy });
  for (let i = 0; i < 5; i++) w.poll();
  // 95 % of the limit is 20 MiB over the low-water mark: 40 -> 20, then 20 -> 0; back up from
  // empty by one step.
  assert.deepEqual(seen, [20, 0, 1]);
});

test("watchMemory: the engine shrinks its cache under (fake) pressure between tokens and the tokens stay the same", async () => {
  const fixed = await withEngine({ dram: HIGH() }, (e) => drain(e, 12));
  let pressure = true;
  let t = 0;
  const read = (): PressureSample => (t += 100, cg(t, pressure ? 99 : 10));
  await withEngine({ dram: HIGH(), watchMemory: { read, intervalMs: 1, policy: { cooldownMs: 0, calmMs: 0 } } }, async (e) => {
    const full = e.plan!.cacheBytes;
    // The timer polls; wait (bounded) until the cache has been halved down to zero.
    for (let i = 0; i < 500 && e.flashStats()!.cacheBytes > 0; i++) await new Promise((r) => setTimeout(r, 2));
    assert.ok(e.flashStats()!.cacheBytes < e.plan!.cacheBytes / 4);
    pressure = false;
    const r = await drain(e, 12);
    assert.deepEqual(r.ids, fixed.ids);
    // Calm again: grown back to the budget's cache.
    for (let i = 0; i < 500 && e.flashStats()!.cacheBytes < full; i++) await new Promise((r) => setTimeout(r, 2));
    assert.equal(e.flashStats()!.cacheBytes, full);
    const sources = r.stats.flash!.budgetHistory!.map((h) => h.source);
    assert.ok(sources.every((s) => s === "pressure" || s === "load"), sources.join());
  });
});

// ---- The CLI: run --dram-schedule ----

const cli = (argv: string[]) => runCli(argv);

test("run --dram-schedule: same tokens as a fixed budget, the schedule and per-phase numbers in --json", async () => {
  const common = [flash, "-p", "The quick brown fox", "-n", "20", "--sparsity", String(SPARSITY), "--seed", "7", "--json"];
  const fixed = await cli(["run", ...common, "--dram", String(HIGH())]);
  assert.equal(fixed.code, 0, fixed.err);
  const s = await cli(["run", ...common, "--dram-schedule", `0:${HIGH()},6:${min},12:${HIGH()}`]);
  assert.equal(s.code, 0, s.err);
  const a = JSON.parse(fixed.out.trim().split("\n").pop()!), b = JSON.parse(s.out.trim().split("\n").pop()!);
  assert.deepEqual(b.tokens, a.tokens);
  assert.deepEqual(b.dram_schedule, [{ token: 0, budget: String(HIGH()) }, { token: 6, budget: String(min) }, { token: 12, budget: String(HIGH()) }]);
  assert.deepEqual(b.phases.map((p: { from_token: number; tokens: number }) => [p.from_token, p.tokens]), [[0, 5], [6, 6], [12, 8]]);
  assert.ok(b.phases[1].cache_bytes < b.phases[0].cache_bytes && b.phases[1].weight_resident_peak_bytes < b.phases[0].weight_resident_peak_bytes);
  assert.deepEqual(b.budget_history.map((h: { at_token: number | null }) => h.at_token), [null, 6, 12]);
  assert.match(s.err, /dram schedule: from token 6, budget \d+ \(/);
  assert.match(s.err, /phase from token 12 /);
  const bad = await cli(["run", ...common, "--dram-schedule", "0:1GB,4:1%"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /BUDGET_TOO_SMALL|below this model's minimum/);
});
