// Where a model's calibration table lives: beside the model file as <file>.calibration.json
// (written atomically). One table serves every sparsity level.
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { tableFromJson, tableToJson, type ThresholdTable } from "./thresholds.js";

export const calibrationPath = (model: string): string => `${model}.calibration.json`;

export async function loadCalibration(model: string): Promise<ThresholdTable | undefined> {
  const path = calibrationPath(model);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  return tableFromJson(JSON.parse(text), path);
}

export async function saveCalibration(model: string, table: ThresholdTable): Promise<string> {
  const path = calibrationPath(model);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, JSON.stringify(tableToJson(table)));
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return path;
}
