// The run-time DRAM budget of a loaded engine (setDramBudget, the memory watcher): what is
// asked, what it leaves the cache, what native holds now, and changes waiting for the next
// token boundary (PAPER.md: when the budget changes, only the cache is retuned).
import type { FlashMemoryPlan } from "../memory/budget.js";
import { MemoryPressureWatcher, type WatchMemoryOptions } from "../memory/pressure.js";
import type { BudgetChange } from "./types.js";

// What the controller needs from its engine.
export interface BudgetTarget {
  // A native pass is running: changes wait for it to end.
  evaluating(): boolean;
  // Generated tokens so far while a generation runs, else null (for the history).
  tokenIndex(): number | null;
  // Resizes the native cache (native is idle).
  resizeCache(cacheBytes: number): void;
}

export class BudgetController {
  // The budget in force and the cache size native holds now (the budget's share, or less under
  // pressure); read-only outside.
  budgetBytes = 0;
  appliedCacheBytes = 0;
  private budgetCacheBytes = 0;
  private pressureCacheBytes: number | undefined;
  private pendingBudget: { budgetBytes: number; cacheBytes: number; reason: string | undefined } | undefined;
  private pendingPressure: { reason: string } | undefined;
  readonly history: BudgetChange[] = [];
  private watcher: MemoryPressureWatcher | undefined;

  constructor(
    private readonly target: BudgetTarget,
    plan: FlashMemoryPlan | undefined,
  ) {
    if (plan) {
      this.budgetBytes = plan.budgetBytes;
      this.budgetCacheBytes = this.appliedCacheBytes = plan.cacheBytes;
      this.history.push({ atToken: null, budgetBytes: plan.budgetBytes, cacheBytes: plan.cacheBytes, source: "load" });
    }
  }

  // The budget in force (bytes); changes asked for during a generation apply at its next token.
  get dramBudget(): number {
    return this.pendingBudget?.budgetBytes ?? this.budgetBytes;
  }

  // A new budget and the cache it leaves, applied at once unless a pass is running.
  request(budgetBytes: number, cacheBytes: number, reason: string | undefined): void {
    this.pendingBudget = { budgetBytes, cacheBytes, reason };
    if (!this.target.evaluating()) this.apply();
  }

  // Starts the memory-pressure watcher (LoadOptions.watchMemory).
  watch(options: WatchMemoryOptions): void {
    this.watcher?.stop();
    this.watcher = new MemoryPressureWatcher(
      this.budgetCacheBytes,
      (cacheBytes, reason) => {
        this.pressureCacheBytes = cacheBytes;
        this.pendingPressure = { reason };
        if (!this.target.evaluating()) this.apply();
      },
      options,
    );
    this.watcher.start();
  }

  // Runs at token boundaries (native is idle): resizes the cache to min(budget's share, the
  // watcher's allowance) and records what changed.
  apply(): void {
    const b = this.pendingBudget, p = this.pendingPressure;
    if (!b && !p) return;
    this.pendingBudget = this.pendingPressure = undefined;
    if (b) {
      this.budgetBytes = b.budgetBytes;
      this.budgetCacheBytes = b.cacheBytes;
      this.watcher?.retarget(b.cacheBytes);
      if (this.watcher) this.pressureCacheBytes = this.watcher.cacheBytes;
    }
    const cache = Math.min(this.budgetCacheBytes, this.pressureCacheBytes ?? Infinity);
    if (cache !== this.appliedCacheBytes) {
      this.target.resizeCache(cache);
      this.appliedCacheBytes = cache;
    }
    const reason = [b?.reason, p?.reason].filter((r) => r !== undefined).join("; ");
    this.history.push({
      atToken: this.target.tokenIndex(), budgetBytes: this.budgetBytes, cacheBytes: cache, source: p && !b ? "pressure" : "api",
      ...(reason !== "" ? { reason } : {}),
    });
  }

  stop(): void {
    this.watcher?.stop();
    this.watcher = undefined;
  }
}
