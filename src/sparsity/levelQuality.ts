// The quality each calibrated level was measured to keep, on the calibration text itself: mean
// KL(dense || sparse) of the next-token distributions and top-1 agreement with the dense model,
// scored as `activeflow eval` scores them (every position of a window but its last). The tuner's
// quality floor (qualityFloor.ts) reads these numbers; they predict, not guarantee, the quality
// on other text.
import type { SparsityTarget } from "./target.js";
import { argmax, logSoftmax } from "../eval/quality.js";

// Per level of the table (same order): kl[i] and top1[i] at levels[i], over `tokens` positions.
export interface LevelQuality {
  kl: number[];
  top1: number[];
  tokens: number;
}

// Running sums, so a calibration can save them after each window and resume.
export interface LevelQualitySums {
  kl: number[]; // sum over positions of KL, per level
  agree: number[]; // positions whose argmax matches the dense one, per level
  tokens: number;
  done: number; // windows scored
}

// Scores every level's thresholds (levels at 0 are the dense model: KL 0, top-1 1) over the
// windows, each from a fresh context. The dense distributions of one window are held at a
// time, as f32 log-probabilities and probabilities ([window][vocab] each).
export async function measureLevelQuality(
  engine: SparsityTarget,
  windows: readonly number[][],
  levels: readonly number[],
  thresholds: readonly Float32Array[],
  options: {
    signal?: AbortSignal;
    onProgress?: (fraction: number) => void;
    start?: LevelQualitySums;
    onWindow?: (sums: LevelQualitySums) => Promise<void>;
  } = {},
): Promise<LevelQuality> {
  const sums: LevelQualitySums = options.start
    ? { kl: [...options.start.kl], agree: [...options.start.agree], tokens: options.start.tokens, done: options.start.done }
    : { kl: levels.map(() => 0), agree: levels.map(() => 0), tokens: 0, done: 0 };
  try {
    for (let w = sums.done; w < windows.length; w++) {
      const ids = windows[w]!;
      const scored = ids.length - 1;
      if (scored > 0) {
        engine.setThresholds(null);
        const dense = (await engine.evaluateLogits(ids, options.signal)).slice(0, scored).map((l) => {
          const d = logSoftmax(l);
          const lp = Float32Array.from(d);
          return { lp, p: lp.map(Math.exp), top: argmax(d) };
        });
        for (const [i, level] of levels.entries()) {
          if (level === 0) {
            sums.agree[i]! += scored;
            continue;
          }
          engine.setThresholds(thresholds[i]!);
          const sparse = await engine.evaluateLogits(ids, options.signal);
          for (let t = 0; t < scored; t++) {
            const sp = logSoftmax(sparse[t]!);
            const { p, lp, top } = dense[t]!;
            let k = 0;
            for (let v = 0; v < p.length; v++) if (p[v]! > 0) k += p[v]! * (lp[v]! - sp[v]!);
            sums.kl[i]! += Math.max(0, k); // rounding can leave a dense-equal row a hair below 0
            if (argmax(sp) === top) sums.agree[i]!++;
          }
        }
        sums.tokens += scored;
      }
      sums.done = w + 1;
      await options.onWindow?.(sums);
      options.onProgress?.(sums.done / windows.length);
    }
  } finally {
    engine.setThresholds(null);
  }
  const n = Math.max(1, sums.tokens);
  return { kl: sums.kl.map((k) => toStored(k / n)), top1: sums.agree.map((a) => toStored(a / n)), tokens: sums.tokens };
}

// Six significant digits: far finer than the measurement's noise, and what a flash header's
// f32 copy reads back as exactly (flashKeys.ts), so both homes of a table agree on the floor.
const QUALITY_DIGITS = 6;
export const toStored = (x: number): number => Number(x.toPrecision(QUALITY_DIGITS));
