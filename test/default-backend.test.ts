// The core names no backend (issue 11 item 4): Engine.load takes the one it is given, and its
// default is set by the platform entry (src/index.ts -> src/backends/default.ts), not imported
// by engine/. Each test file runs in its own process, so nothing has set the default before.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend, BackendModelSpec } from "../src/backend/Backend.js";
import { registeredBackend } from "../src/backend/registry.js";
import { Engine } from "../src/engine/Engine.js";
import { isActiveflowError } from "../src/errors.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";

test("engine/ alone has no default backend; the package entry sets the native one", async () => {
  assert.throws(() => registeredBackend(), (e) => isActiveflowError(e) && e.code === "NO_BACKEND" && /import Engine from the package entry/.test(e.message));
  await assert.rejects(Engine.load("no-such-model.gguf"), (e) => isActiveflowError(e) && e.code === "NO_BACKEND");
  const entry = await import("../src/index.js");
  assert.equal(registeredBackend().name, "native");
  assert.equal(registeredBackend(), entry.defaultBackend(), "one default instance per process");
});

test("Engine.load runs the model on the backend it is given", async () => {
  const dir = await mkdtemp(join(tmpdir(), "af-backend-"));
  try {
    const m = await buildTinyModel(join(dir, "t.gguf"));
    const specs: BackendModelSpec[] = [];
    const native = registeredBackend();
    // The native backend's probes and kernels, but a model loader that records and refuses.
    const fake: Backend = Object.assign(Object.create(native) as Backend, {
      name: "fake",
      loadModel: (spec: BackendModelSpec) => {
        specs.push(spec);
        return Promise.reject(new Error("fake backend: no model"));
      },
    });
    await assert.rejects(Engine.load(m.path, { threads: 1 }, fake), /fake backend: no model/);
    assert.equal(specs.length, 1);
    assert.equal(specs[0]!.path, m.path);
    assert.ok(specs[0]!.tensors.length > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
