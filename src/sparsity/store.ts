// Where a model's calibration table lives. A converted (flash) file carries it in its own
// header as activeflow.thresholds.* keys (flashKeys.ts); a plain GGUF, which we never rewrite,
// has it beside it as <file>.calibration.json. Both are written atomically. One table serves
// every sparsity level.
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { ActiveflowError, diskFull } from "../errors.js";
import { KEY } from "../flash/format.js";
import { updateFlashMetadata } from "../flash/metadata.js";
import { readGguf } from "../gguf/reader.js";
import type { GgufFile } from "../gguf/types.js";
import { tableFromKeys, tableToKeys } from "./flashKeys.js";
import { tableFromJson, tableToJson, type ThresholdTable } from "./thresholds.js";

export const calibrationPath = (model: string): string => `${model}.calibration.json`;

// The model's header, or undefined when there is no file to read (the sidecar may still exist).
async function header(model: string): Promise<GgufFile | undefined> {
  try {
    return await readGguf(model);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

// The table in the file's activeflow.thresholds.* keys, else the sidecar JSON, else undefined.
// A weight-aware table in the keys takes its column norms from the sidecar (storeCalibration
// writes both). `parsed`: the model's header when the caller has read it already.
export async function loadCalibration(model: string, parsed?: GgufFile): Promise<ThresholdTable | undefined> {
  const file = parsed ?? (await header(model));
  const inFile = file ? tableFromKeys(file) : undefined;
  if (inFile && inFile.selection !== "weight") return inFile;
  const side = await loadSidecar(model);
  if (!inFile) return side;
  if (!side?.columnNorms) {
    throw new ActiveflowError("BAD_ARGUMENT", `${model}: its thresholds are weight-aware, and their column norms, kept in ${calibrationPath(model)}, are missing; run \`activeflow calibrate\` on it again`);
  }
  return { ...inFile, columnNorms: side.columnNorms };
}

async function loadSidecar(model: string): Promise<ThresholdTable | undefined> {
  const path = calibrationPath(model);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ActiveflowError("BAD_ARGUMENT", `${path}: not JSON (${(e as Error).message}); run \`activeflow calibrate\` again`);
  }
  return tableFromJson(json, path);
}

// Writes the sidecar JSON beside `model` (any file).
export async function saveCalibration(model: string, table: ThresholdTable): Promise<string> {
  const path = calibrationPath(model);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, JSON.stringify(tableToJson(table)));
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw diskFull(e, path);
  }
  return path;
}

export const isFlashFile = (file: GgufFile): boolean => file.metadata.has(KEY.version);

// Stores the table where loadCalibration looks first: in a flash file's header, else in the
// sidecar. Returns what was written (the file itself, or the sidecar's path).
export async function storeCalibration(model: string, table: ThresholdTable): Promise<string> {
  const file = await readGguf(model);
  if (!isFlashFile(file)) return saveCalibration(model, table);
  const arch = file.metadata.get("general.architecture");
  const blocks = typeof arch === "string" ? Number(file.metadata.get(`${arch}.block_count`)) : NaN;
  if (blocks !== table.nLayer) {
    throw new ActiveflowError("BAD_ARGUMENT", `${model}: the table is for ${table.nLayer} layers, the model has ${blocks}`);
  }
  // The header's room holds no column norms (a 7B's are 3 MB): a weight-aware table goes to
  // the sidecar too, which loadCalibration reads them from.
  if (table.columnNorms) await saveCalibration(model, table);
  await updateFlashMetadata(model, tableToKeys(table));
  return model;
}
