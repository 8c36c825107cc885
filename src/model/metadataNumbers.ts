// Numeric GGUF metadata as the model config reads it: present or defaulted, and sane.
import { ActiveflowError } from "../errors.js";
import type { GgufFile, GgufValue } from "../gguf/types.js";

export function num(file: GgufFile, key: string, fallback?: number): number {
  const v: GgufValue | undefined = file.metadata.get(key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata key ${key} is missing`);
  }
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata key ${key} must be a number, found ${typeof v}`);
}

export function positive(file: GgufFile, key: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0 || value > 1 << 24) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${key} = ${value} is not a sane positive integer`);
  }
  return value;
}
