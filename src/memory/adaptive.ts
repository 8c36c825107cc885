// Run-time budget changes resize only the hot cache (PAPER.md, greedy tuning): the head's
// residency, staging and the preload buffers stay as planned at load. So a plan for a budget
// that will later shrink is made for its floor, and the cache then gets what each budget
// leaves above the held parts.
import { ActiveflowError } from "../errors.js";
import { engineCharged, fmt, type FlashMemoryPlan } from "./budget.js";

// Bytes the plan holds besides its cache: resident tensors, staging, preload buffers, KV,
// scratch (not the engine's own memory, which is not part of a minimum: budget.ts engineCharged).
export function heldBesidesCache(plan: FlashMemoryPlan): number {
  return plan.weightBytes - plan.cacheBytes + plan.kvBytes + plan.scratchBytes;
}

// The cache a budget leaves under `plan`'s held parts and the engine's own memory (as
// planFlashMemory charges it, with its 2 % slack), or BUDGET_TOO_SMALL naming the run-time minimum.
export function cacheForBudget(plan: FlashMemoryPlan, budgetBytes: number): number {
  const held = heldBesidesCache(plan);
  if (budgetBytes < held) {
    throw new ActiveflowError(
      "BUDGET_TOO_SMALL",
      `a DRAM budget of ${fmt(budgetBytes)} is below this engine's run-time minimum of ${fmt(held)}: ` +
        `a run-time change resizes only the hot cache; the rest (head ${plan.headResident ? "resident" : "streamed"}, staging, preload buffers, KV cache, scratch) stays as loaded ` +
        `(load with a lower floor, e.g. the lowest --dram-schedule entry, to go lower)`,
    );
  }
  return Math.max(0, Math.floor((budgetBytes - held - engineCharged(plan.engineBytes, budgetBytes - held)) * 0.98));
}

// `floorPlan` (planned for the lowest budget the run will see) with its cache grown to what
// `budgetBytes` leaves.
export function planAboveFloor(floorPlan: FlashMemoryPlan, budgetBytes: number): FlashMemoryPlan {
  if (budgetBytes < floorPlan.budgetBytes) {
    throw new ActiveflowError("BAD_ARGUMENT", `the DRAM budget ${fmt(budgetBytes)} is below its floor ${fmt(floorPlan.budgetBytes)}`);
  }
  const cacheBytes = cacheForBudget(floorPlan, budgetBytes);
  return { ...floorPlan, budgetBytes, cacheBytes, weightBytes: floorPlan.weightBytes - floorPlan.cacheBytes + cacheBytes };
}
