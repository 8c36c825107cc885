// Resuming an interrupted calibration: after each stage (the text, the dense statistics, each
// sensitivity probe, each matched level, each window the quality is measured on) calibrate()
// writes what it has to a checkpoint file; a later run with the same model and settings (its
// `key`) starts after the last saved step.
import { createHash } from "node:crypto";
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { diskFull } from "../errors.js";
import type { SiteHistograms } from "../backend/Backend.js";
import type { LevelQualitySums } from "./levelQuality.js";

export interface CheckpointState {
  key: string;
  text?: { windows: number[][]; tokens: number; source: string };
  dense?: { counts: number[]; bins: number; perOctave: number; minLog2: number };
  // Probe KLs of the first `done` sites.
  probe?: { kl: number[]; done: number; tokens: number };
  // Thresholds of finished matched levels, by level index.
  matched?: Record<string, number[]>;
  // The quality sums over the first `done` windows (levelQuality.ts).
  quality?: LevelQualitySums;
}

const VERSION = 1;

// What must match for a checkpoint to be reused: the model file and every setting that changes
// the result.
export function checkpointKey(parts: Record<string, unknown>): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

// The saved state for `key`, or undefined (no file, another key, unreadable).
export async function readCheckpoint(path: string, key: string): Promise<CheckpointState | undefined> {
  try {
    const j = JSON.parse(await readFile(path, "utf8")) as { version?: number } & CheckpointState;
    return j.version === VERSION && j.key === key ? j : undefined;
  } catch {
    return undefined;
  }
}

export async function writeCheckpoint(path: string, state: CheckpointState): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, JSON.stringify({ version: VERSION, ...state }));
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw diskFull(e, path);
  }
}

export async function removeCheckpoint(path: string): Promise<void> {
  await unlink(path).catch(() => {});
}

export function histogramsToJson(h: SiteHistograms): NonNullable<CheckpointState["dense"]> {
  return { counts: Array.from(h.counts), bins: h.bins, perOctave: h.perOctave, minLog2: h.minLog2 };
}

export function histogramsFromJson(j: NonNullable<CheckpointState["dense"]>): SiteHistograms {
  return { counts: Float64Array.from(j.counts), bins: j.bins, perOctave: j.perOctave, minLog2: j.minLog2 };
}
