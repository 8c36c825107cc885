// Engine.load's helpers: the budgets a load plans for, the flash shape a conversion would
// write (to refuse an impossible budget before converting), the context length asked for.
import { ActiveflowError } from "../errors.js";
import { planFlashLayout } from "../flash/convert.js";
import type { GgufFile } from "../gguf/types.js";
import { parseBudget, planFlashMemory, resolveBudget, type Budget, type FlashShape } from "../memory/budget.js";
import { readModelConfig } from "../model/config.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { LoadOptions } from "./types.js";

// The load budget and the budgets run-time changes will go down to (dramFloor), parsed once.
export interface LoadBudgets {
  dram: Budget | undefined;
  floors: Budget[] | undefined;
}

export function parseLoadBudgets(options: LoadOptions): LoadBudgets {
  return {
    dram: options.dram === undefined ? undefined : parseBudget(options.dram),
    floors: options.dramFloor === undefined ? undefined : [options.dramFloor].flat().map((b) => parseBudget(b)),
  };
}

// The load budget and, with run-time changes (dramFloor), the lowest one, in bytes.
// Percentages are of `fileBytes`: the size of the model file the user gave.
export function budgetsOf(budgets: LoadBudgets, fileBytes: number): { budget: number; floor: number | undefined } {
  const { dram, floors } = budgets;
  const budget = dram === undefined ? Number.MAX_SAFE_INTEGER : resolveBudget(dram, fileBytes);
  // Run-time changes resize only the cache: with a floor, the rest is planned for it.
  const floor = dram === undefined || floors === undefined ? undefined : Math.min(budget, ...floors.map((b) => resolveBudget(b, fileBytes)));
  return { budget, floor };
}

// The shapes of the file convertToFlash would write for `source` (no data is read).
export function flashShapeOf(source: GgufFile, options: LoadOptions): FlashShape {
  const { layout } = planFlashLayout(source, {
    ...(options.groupSize !== undefined ? { groupSize: options.groupSize } : {}),
    ...(options.keepSourceType ? { keepSourceType: true } : {}),
  });
  return {
    groupSize: layout.groupSize, resident: [...layout.resident, ...layout.scales], extents: layout.extents,
    ...(layout.expertShape ? { experts: layout.experts, expertShape: layout.expertShape } : {}),
  };
}

// Throws BUDGET_TOO_SMALL (with the minimum) when the budget cannot hold the converted model,
// as planFlashMemory would after the conversion.
export function checkBudgetBeforeConversion(source: GgufFile, planBytes: number, contextLength: number, options: LoadOptions, threads: number, io: { stagingSlots: number; maxRead: number }): void {
  const shape = flashShapeOf(source, options);
  planFlashMemory(shape, readModelConfig(source), contextLength, threads, planBytes, { io });
}

// The context length LoadOptions asks for (a number, or a function of the tokenizer).
export function contextLengthOf(options: LoadOptions, tokenizer: Tokenizer, trainedContext: number): number {
  const c = options.contextLength;
  const n = typeof c === "function" ? c(tokenizer, trainedContext) : c ?? Math.min(2048, trainedContext);
  if (!Number.isInteger(n) || n < 1) throw new ActiveflowError("BAD_ARGUMENT", `context length must be a positive integer, got ${n}`);
  return n;
}
