// A quality floor for sparsity "auto": the most KL(dense || sparse) and the least top-1
// agreement with the dense model a level may have, judged by what calibrate measured each level
// to keep on its own text (levelQuality.ts). The tuner never picks a level above the floor.
import { ActiveflowError } from "../errors.js";
import type { LevelQuality } from "./levelQuality.js";
import type { ThresholdTable } from "./thresholds.js";

export interface QualityFloor {
  // Mean KL(dense || sparse) per token at most this (nats).
  maxKl?: number;
  // Top-1 agreement with the dense model at least this, in [0, 1].
  minTop1?: number;
}

export const hasFloor = (f: QualityFloor | undefined): f is QualityFloor => f?.maxKl !== undefined || f?.minTop1 !== undefined;

// Throws BAD_ARGUMENT naming the bad bound; `names` are what the caller calls them (the
// library's option names by default, the CLI's flags there).
export function checkQualityFloor(f: QualityFloor, names = { maxKl: "maxKl", minTop1: "minTop1" }): void {
  if (f.maxKl !== undefined && !(typeof f.maxKl === "number" && Number.isFinite(f.maxKl) && f.maxKl >= 0)) {
    throw new ActiveflowError("BAD_ARGUMENT", `${names.maxKl} must be a finite number >= 0 (nats of KL per token), got ${String(f.maxKl)}`);
  }
  if (f.minTop1 !== undefined && !(typeof f.minTop1 === "number" && f.minTop1 >= 0 && f.minTop1 <= 1)) {
    throw new ActiveflowError("BAD_ARGUMENT", `${names.minTop1} must be a number in [0, 1] (a share of tokens), got ${String(f.minTop1)}`);
  }
}

export function describeFloor(f: QualityFloor): string {
  const parts: string[] = [];
  if (f.maxKl !== undefined) parts.push(`KL <= ${f.maxKl}`);
  if (f.minTop1 !== undefined) parts.push(`top-1 >= ${f.minTop1}`);
  return parts.join(", ");
}

// The table's measured quality per level, or a one-line error saying to calibrate again
// (tables made before quality floors load, but cannot serve one).
export function qualityOf(table: ThresholdTable, model: string): LevelQuality {
  if (table.quality) return table.quality;
  throw new ActiveflowError(
    "BAD_ARGUMENT",
    `${model}: its calibration table holds no measured quality per level (made before quality floors); run \`activeflow calibrate ${model}\` again to use --max-kl / --min-top1`,
  );
}

const meets = (q: LevelQuality, i: number, f: QualityFloor): boolean =>
  (f.maxKl === undefined || q.kl[i]! <= f.maxKl) && (f.minTop1 === undefined || q.top1[i]! >= f.minTop1);

// The highest of `levels` (ascending, as in the table) that meets the floor with every level
// below it: quality falls with sparsity, so a level that passes above one that missed passes by
// the measurement's noise, not by being safe. Undefined when the lowest level misses.
export function floorLevel(levels: readonly number[], q: LevelQuality, f: QualityFloor): number | undefined {
  let top: number | undefined;
  for (let i = 0; i < levels.length && meets(q, i, f); i++) top = levels[i];
  return top;
}

// KL and top-1 the table measured at `level`, when it holds that level and the numbers.
export function predictedQuality(levels: readonly number[], q: LevelQuality | undefined, level: number): { kl: number; top1: number } | undefined {
  const i = levels.findIndex((l) => Math.abs(l - level) < 1e-9);
  return q && i >= 0 ? { kl: q.kl[i]!, top1: q.top1[i]! } : undefined;
}
