// Calibration tables shipped in the repository (data/calibration/), made by our own
// `activeflow calibrate` on self-generated text, so that a fetched model runs sparse at once.
// Each file records its method, text source, tokens and the command that made it.
import { existsSync, readFileSync } from "node:fs";
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ActiveflowError } from "../errors.js";
import { calibrationPath } from "../sparsity/store.js";
import { tableFromJson } from "../sparsity/thresholds.js";

// The package root: the first directory above this module holding activeflow's package.json
// (src/fetch/ when run from source, dist/src/fetch/ when built).
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "activeflow") return dir;
      } catch {
        // not ours; keep looking up
      }
    }
    dir = dirname(dir);
  }
  return undefined;
}

export function shippedCalibrationFile(modelFileName: string): string | undefined {
  const root = packageRoot();
  if (root === undefined) return undefined;
  const file = join(root, "data", "calibration", `${modelFileName}.calibration.json`);
  return existsSync(file) ? file : undefined;
}

// Puts the shipped table beside `model` as its sidecar unless the model has one already (a
// table the user made with `calibrate` wins). Returns the sidecar's path when it installed it.
export async function installShippedCalibration(model: string, modelFileName: string): Promise<string | undefined> {
  const shipped = shippedCalibrationFile(modelFileName);
  const dest = calibrationPath(model);
  if (shipped === undefined || existsSync(dest)) return undefined;
  const text = await readFile(shipped, "utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ActiveflowError("BAD_ARGUMENT", `${shipped}: not JSON (${(e as Error).message})`);
  }
  tableFromJson(json, shipped); // a malformed table fails here, naming the shipped file
  const tmp = `${dest}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, dest);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return dest;
}
