// A threshold table as activeflow.thresholds.* keys of a converted (flash) file
// (docs/FLASH_FORMAT.md section 8), so the file carries its own calibration.
import { ActiveflowError } from "../errors.js";
import type { GgufFile, GgufValue } from "../gguf/types.js";
import { f32Arr, str, strArr, u32, u64, type GgufWriteValue } from "../gguf/writer.js";
import { SITES } from "../backend/Backend.js";
import { checkQuality, type ThresholdTable } from "./thresholds.js";
import { SELECTIONS, type Selection } from "./selection.js";
import { toStored } from "./levelQuality.js";

const P = "activeflow.thresholds.";
export const THRESHOLD_KEY = {
  version: `${P}version`,
  levels: `${P}levels`,
  nLayer: `${P}n_layer`,
  sites: `${P}sites`,
  // [levels][n_layer][sites], f32: the table's thresholds, level-major.
  values: `${P}values`,
  // Same shape: the fraction of each site's inputs the threshold was chosen to drop.
  siteSparsity: `${P}site_sparsity`,
  tokens: `${P}tokens`,
  source: `${P}source`,
  method: `${P}method`,
  // "magnitude" or "weight" (the score the values were calibrated on); absent = magnitude.
  // A weight table's column norms do not fit the header's room: they sit in the sidecar.
  selection: `${P}selection`,
  // [levels] f32 each, and u64: KL(dense || sparse) and top-1 agreement each level kept on the
  // calibration text, and the positions scored (levelQuality.ts). Absent in older tables.
  kl: `${P}kl`,
  top1: `${P}top1`,
  qualityTokens: `${P}quality_tokens`,
} as const;
export const THRESHOLDS_VERSION = 1;

const flatten = (rows: readonly Float32Array[]): Float32Array => {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const r of rows) {
    out.set(r, at);
    at += r.length;
  }
  return out;
};

export function tableToKeys(t: ThresholdTable): Map<string, GgufWriteValue> {
  const m = new Map<string, GgufWriteValue>([
    [THRESHOLD_KEY.version, u32(THRESHOLDS_VERSION)],
    [THRESHOLD_KEY.levels, f32Arr(t.levels)],
    [THRESHOLD_KEY.nLayer, u32(t.nLayer)],
    [THRESHOLD_KEY.sites, strArr(t.sites)],
    [THRESHOLD_KEY.values, f32Arr(flatten(t.thresholds))],
    [THRESHOLD_KEY.tokens, u64(t.calibrationTokens)],
    [THRESHOLD_KEY.source, str(t.source)],
    [THRESHOLD_KEY.method, str(t.method ?? "uniform")],
  ]);
  if (t.siteSparsity) m.set(THRESHOLD_KEY.siteSparsity, f32Arr(flatten(t.siteSparsity)));
  if (t.selection !== undefined) m.set(THRESHOLD_KEY.selection, str(t.selection));
  if (t.quality !== undefined) {
    m.set(THRESHOLD_KEY.kl, f32Arr(t.quality.kl));
    m.set(THRESHOLD_KEY.top1, f32Arr(t.quality.top1));
    m.set(THRESHOLD_KEY.qualityTokens, u64(t.quality.tokens));
  }
  return m;
}

export const hasThresholdKeys = (file: GgufFile): boolean => file.metadata.has(THRESHOLD_KEY.version);

// The table stored in `file`'s keys, or undefined when it has none. A weight-aware table comes
// back without its column norms (store.ts adds them from the sidecar). Throws BAD_ARGUMENT naming
// the file and the key when a key is missing, of the wrong kind, or does not fit the model.
export function tableFromKeys(file: GgufFile): ThresholdTable | undefined {
  if (!hasThresholdKeys(file)) return undefined;
  const bad = (key: string, m: string) => new ActiveflowError("BAD_ARGUMENT", `${file.path}: metadata key ${key} ${m}; run \`activeflow calibrate\` on it again`);
  const get = (key: string): GgufValue => {
    const v = file.metadata.get(key);
    if (v === undefined) throw bad(key, "is missing");
    return v;
  };
  const int = (key: string): number => {
    const v = get(key);
    const n = typeof v === "bigint" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0) throw bad(key, `must be a non-negative integer, found ${describe(v)}`);
    return n;
  };
  const text = (key: string): string => {
    const v = get(key);
    if (typeof v !== "string") throw bad(key, `must be a string, found ${describe(v)}`);
    return v;
  };
  const floats = (key: string, n: number): Float32Array => {
    const v = get(key);
    const ok = v instanceof Float32Array || (Array.isArray(v) && v.every((x) => typeof x === "number"));
    if (!ok) throw bad(key, `must be an f32 array, found ${describe(v)}`);
    const a = Float32Array.from(v as ArrayLike<number>);
    if (a.length !== n) throw bad(key, `holds ${a.length} numbers, expected ${n}`);
    if (!a.every((x) => Number.isFinite(x))) throw bad(key, "holds a non-finite number");
    return a;
  };

  const version = int(THRESHOLD_KEY.version);
  if (version !== THRESHOLDS_VERSION) throw bad(THRESHOLD_KEY.version, `is ${version}; this build reads version ${THRESHOLDS_VERSION}`);
  const sites = get(THRESHOLD_KEY.sites);
  if (!Array.isArray(sites) || sites.join(",") !== SITES.join(",")) {
    throw bad(THRESHOLD_KEY.sites, `must be [${SITES.join(", ")}], found ${describe(sites)}`);
  }
  const nLayer = int(THRESHOLD_KEY.nLayer);
  const arch = file.metadata.get("general.architecture");
  const blocks = typeof arch === "string" ? file.metadata.get(`${arch}.block_count`) : undefined;
  if (blocks !== undefined && Number(blocks) !== nLayer) {
    throw bad(THRESHOLD_KEY.nLayer, `is ${nLayer}, but the model has ${Number(blocks)} layers (${arch}.block_count)`);
  }
  const levelsRaw = get(THRESHOLD_KEY.levels);
  if (!(levelsRaw instanceof Float32Array || Array.isArray(levelsRaw)) || levelsRaw.length === 0) {
    throw bad(THRESHOLD_KEY.levels, `must be a non-empty f32 array, found ${describe(levelsRaw)}`);
  }
  // Stored as f32: round back to the decimals the levels were written with (0.3, not 0.30000001).
  const levels = Array.from(floats(THRESHOLD_KEY.levels, levelsRaw.length), (x) => Number(x.toPrecision(6)));
  for (let i = 0; i < levels.length; i++) {
    if (!(levels[i]! >= 0 && levels[i]! < 1) || (i > 0 && levels[i]! <= levels[i - 1]!)) {
      throw bad(THRESHOLD_KEY.levels, `must rise strictly within [0, 1), found [${levels.join(", ")}]`);
    }
  }
  const per = nLayer * SITES.length;
  const split = (a: Float32Array): Float32Array[] => levels.map((_, i) => a.slice(i * per, (i + 1) * per));
  const thresholds = split(floats(THRESHOLD_KEY.values, levels.length * per));
  const hasSite = file.metadata.has(THRESHOLD_KEY.siteSparsity);
  const selection = file.metadata.has(THRESHOLD_KEY.selection) ? text(THRESHOLD_KEY.selection) : undefined;
  if (selection !== undefined && !SELECTIONS.includes(selection as Selection)) {
    throw bad(THRESHOLD_KEY.selection, `must be one of ${SELECTIONS.join(", ")}, found ${describe(selection)}`);
  }
  // The three quality keys come together (tableToKeys writes all or none).
  const hasQuality = file.metadata.has(THRESHOLD_KEY.kl) || file.metadata.has(THRESHOLD_KEY.top1) || file.metadata.has(THRESHOLD_KEY.qualityTokens);
  const quality = hasQuality
    ? checkQuality(
        // Stored as f32: round back to the digits they were written with (levelQuality.ts).
        Array.from(floats(THRESHOLD_KEY.kl, levels.length), toStored),
        Array.from(floats(THRESHOLD_KEY.top1, levels.length), toStored),
        int(THRESHOLD_KEY.qualityTokens),
        levels.length,
        (m) => new ActiveflowError("BAD_ARGUMENT", `${file.path}: metadata key ${m}; run \`activeflow calibrate\` on it again`),
        { kl: THRESHOLD_KEY.kl, top1: THRESHOLD_KEY.top1, tokens: THRESHOLD_KEY.qualityTokens },
      )
    : undefined;
  return {
    levels,
    nLayer,
    sites: SITES,
    thresholds,
    calibrationTokens: int(THRESHOLD_KEY.tokens),
    source: text(THRESHOLD_KEY.source),
    method: file.metadata.has(THRESHOLD_KEY.method) ? text(THRESHOLD_KEY.method) : "uniform",
    ...(hasSite ? { siteSparsity: split(floats(THRESHOLD_KEY.siteSparsity, levels.length * per)) } : {}),
    ...(selection !== undefined ? { selection: selection as Selection } : {}),
    ...(quality !== undefined ? { quality } : {}),
  };
}

function describe(v: GgufValue | undefined): string {
  if (v === undefined) return "nothing";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return `the ${typeof v} ${String(v)}`;
  if (v instanceof Float32Array) return `an f32 array of ${v.length}`;
  if (ArrayBuffer.isView(v)) return `an integer array of ${(v as unknown as ArrayLike<number>).length}`;
  if (Array.isArray(v)) return `an array of ${v.length} (${v.length > 0 ? typeof v[0] : "empty"})`;
  return typeof v;
}
