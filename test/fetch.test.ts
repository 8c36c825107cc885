import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { cacheRoot, installVerified, isVerified, modelsDir, sidecarPath } from "../src/fetch/cache.js";
import { SMOLLM2, ensureWheelModel, extractVerified, type WheelModelSpec } from "../src/fetch/smollm2.js";
import { ActiveflowError } from "../src/errors.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "af-fetch-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const isFetchError = (re: RegExp) => (e: unknown) => e instanceof ActiveflowError && e.code === "FETCH" && re.test(e.message);

test("cache location follows ACTIVEFLOW_CACHE, else ~/.cache/activeflow", () => {
  assert.equal(cacheRoot({ ACTIVEFLOW_CACHE: "/x/y" }), "/x/y");
  assert.equal(cacheRoot({ ACTIVEFLOW_CACHE: "rel/dir" }), join(process.cwd(), "rel/dir"));
  assert.equal(modelsDir({ ACTIVEFLOW_CACHE: "/x/y" }), join("/x/y", "models"));
  assert.equal(cacheRoot({}), join(homedir(), ".cache", "activeflow"));
  assert.equal(SMOLLM2.file.size, 98_362_432);
});

test("isVerified checks size and hash, then trusts the sidecar while size+mtime hold", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "m.gguf");
  const data = Buffer.from("pretend this is a model");
  writeFileSync(file, data);
  const expected = { sha256: sha(data), size: data.length };

  let hashed = 0;
  assert.equal(await isVerified(file, expected, () => hashed++), true);
  assert.ok(hashed > 0 && existsSync(sidecarPath(file)));
  hashed = 0;
  assert.equal(await isVerified(file, expected, () => hashed++), true);
  assert.equal(hashed, 0, "second check must not re-hash");

  assert.equal(await isVerified(file, { ...expected, size: data.length + 1 }), false);
  assert.equal(await isVerified(file, { ...expected, sha256: "0".repeat(64) }), false);
  assert.equal(await isVerified(join(dir, "absent.gguf"), expected), false);

  // Same size, different bytes, new mtime: the stale sidecar must not vouch for it.
  const other = Buffer.from("pretend THIS is a model");
  writeFileSync(file, other);
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  assert.equal(await isVerified(file, expected), false);
});

test("installVerified renames into place only after the hash matches", async (t) => {
  const dir = tempDir(t);
  const dest = join(dir, "models", "m.gguf");
  const data = Buffer.alloc(3 << 20, 7);
  const expected = { sha256: sha(data), size: data.length };

  await assert.rejects(
    installVerified(dest, expected, Readable.from([data.subarray(0, 100)]), "fake source"),
    isFetchError(/checksum mismatch for fake source: got 100 bytes/),
  );
  assert.deepEqual(readdirSync(join(dir, "models")), [], "no partial or temp file left");

  let last = 0;
  await installVerified(dest, expected, Readable.from([data.subarray(0, 1 << 20), data.subarray(1 << 20)]), "fake", (n) => (last = n));
  assert.equal(last, data.length);
  assert.equal(await isVerified(dest, expected), true);
  assert.deepEqual(readdirSync(join(dir, "models")).filter((f) => f.endsWith(".tmp")), []);

  // A failed re-install leaves the good file alone.
  await assert.rejects(installVerified(dest, expected, Readable.from([Buffer.from("bad")]), "bad"), isFetchError(/mismatch/));
  assert.equal(await isVerified(dest, expected), true);
});

test("ensureWheelModel returns a verified cached file at once, without python or network", async (t) => {
  const dir = tempDir(t);
  const data = Buffer.from("cached model bytes");
  const spec: WheelModelSpec = {
    fileName: "fake.gguf",
    file: { sha256: sha(data), size: data.length },
    wheel: { requirement: "no-such-package==0", sha256: "0".repeat(64), member: "x/fake.gguf" },
  };
  await mkdir(join(dir, "models"));
  await writeFile(join(dir, "models", "fake.gguf"), data);
  const env = { ACTIVEFLOW_CACHE: dir, PATH: join(dir, "empty") };
  assert.equal(await ensureWheelModel(spec, { env }), join(dir, "models", "fake.gguf"));
  assert.equal(await ensureWheelModel(spec, { env }), join(dir, "models", "fake.gguf"));
});

test("missing python3 gives a FETCH error naming it", async (t) => {
  const dir = tempDir(t);
  const spec: WheelModelSpec = {
    fileName: "fake.gguf",
    file: { sha256: "1".repeat(64), size: 10 },
    wheel: { requirement: "no-such-package==0", sha256: "0".repeat(64), member: "x/fake.gguf" },
  };
  const env = { ACTIVEFLOW_CACHE: dir, PATH: join(dir, "empty-bin") };
  await assert.rejects(ensureWheelModel(spec, { env }), isFetchError(/python3 was not found on PATH.*no-such-package==0/));
  // The temp download dir is cleaned up.
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith(".fetch-")), []);
});

const hasPython = spawnSync("python3", ["-c", "pass"]).status === 0;
const hasUnzip = spawnSync("unzip", ["-v"], { stdio: "ignore" }).error === undefined;

for (const extractor of ["python", "unzip"] as const) {
  test(`extractVerified streams a zip member into place (${extractor})`, async (t) => {
    if (!hasPython) return t.skip("python3 is not installed (needed to build the test zip)");
    if (extractor === "unzip" && !hasUnzip) return t.skip("unzip is not installed");
    const dir = tempDir(t);
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131) & 0xff;
    writeFileSync(join(dir, "payload"), data);
    const zip = join(dir, "pkg-0.1-py3-none-any.whl");
    const mk = spawnSync("python3", [
      "-c",
      "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z: z.write(sys.argv[2], 'pkg/model.gguf')",
      zip,
      join(dir, "payload"),
    ]);
    assert.equal(mk.status, 0, String(mk.stderr));
    const dest = join(dir, "models", "model.gguf");
    const expected = { sha256: sha(data), size: data.length };
    await extractVerified(zip, "pkg/model.gguf", dest, expected, { extractor });
    assert.equal(await isVerified(dest, expected), true);
    await assert.rejects(
      extractVerified(zip, "pkg/missing.gguf", join(dir, "models", "other.gguf"), expected, { extractor }),
      isFetchError(/could not extract pkg\/missing.gguf/),
    );
    assert.equal(existsSync(join(dir, "models", "other.gguf")), false);
  });
}
