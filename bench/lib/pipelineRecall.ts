// Part 2 of bench/pipeline: prediction precision and recall per site and layer distance on a
// real model (SmolLM2), through the CLI exactly as a user runs it, for several margins.
import { spawn } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./paths.js";

export interface RecallRun {
  margin: number;
  prompt: string;
  loadAverage1: number;
  generatedTokens: number;
  decodeTokensPerSecond: number;
  flashBytesRead: number;
  preloadBytesRead: number;
  demandBytesRead: number;
  activeOnDemand: number;
  prediction: Record<string, { distance: number; precision: number | null; recall: number | null }[]>;
  // The same from layer 3 on, when the CLI reports it (newer builds).
  predictionFromLayer3?: Record<string, { distance: number; precision: number | null; recall: number | null }[]>;
}

interface RunJson {
  generated_tokens: number;
  decode_tokens_per_s: number;
  flash_bytes_read: number;
  preload?: {
    preload_bytes_read: number;
    demand_bytes_read: number;
    active_on_demand: number;
    prediction: Record<string, { distance: number; precision: number | null; recall: number | null }[]>;
    prediction_from_layer3?: Record<string, { distance: number; precision: number | null; recall: number | null }[]>;
  };
}

export function recallArgv(model: string, prompt: string, tokens: number, dram: string, sparsity: number, margin: number): string[] {
  return [
    join(repoRoot(), "bin/activeflow.js"), "run", model, "-p", prompt, "-n", String(tokens), "--dram", dram,
    "--sparsity", String(sparsity), "--greedy", "--json", "--predict-margin", String(margin),
  ];
}

export async function recallRun(argv: string[], margin: number, prompt: string, nice: number): Promise<RecallRun> {
  const loadAverage1 = loadavg()[0]!;
  const child = spawn("nice", ["-n", String(nice), process.execPath, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-5000)));
  const code = await new Promise<number | null>((r) => child.on("close", r));
  const last = stdout.trim().split("\n").pop() ?? "";
  if (code !== 0 || !last.startsWith("{")) throw new Error(`activeflow ${argv.slice(1).join(" ")} failed (exit ${code}): ${stderr.trim().slice(-1000)}`);
  const j = JSON.parse(last) as RunJson;
  if (!j.preload) throw new Error(`activeflow run --json printed no preload object (margin ${margin})`);
  return {
    margin, prompt, loadAverage1, generatedTokens: j.generated_tokens, decodeTokensPerSecond: j.decode_tokens_per_s,
    flashBytesRead: j.flash_bytes_read, preloadBytesRead: j.preload.preload_bytes_read, demandBytesRead: j.preload.demand_bytes_read,
    activeOnDemand: j.preload.active_on_demand, prediction: j.preload.prediction,
    ...(j.preload.prediction_from_layer3 ? { predictionFromLayer3: j.preload.prediction_from_layer3 } : {}),
  };
}

// Mean over prompts (each generates the same number of tokens) of precision and recall.
export function meanPrediction(
  runs: readonly RecallRun[],
  pick: (r: RecallRun) => RecallRun["prediction"] | undefined = (r) => r.prediction,
): Record<string, { distance: number; precision: number | null; recall: number | null }[]> {
  const out: ReturnType<typeof meanPrediction> = {};
  const sites = [...new Set(runs.flatMap((r) => Object.keys(pick(r) ?? {})))];
  for (const site of sites) {
    const byD = new Map<number, { p: number[]; r: number[] }>();
    for (const run of runs) {
      for (const c of pick(run)?.[site] ?? []) {
        const e = byD.get(c.distance) ?? { p: [], r: [] };
        if (c.precision !== null) e.p.push(c.precision);
        if (c.recall !== null) e.r.push(c.recall);
        byD.set(c.distance, e);
      }
    }
    const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);
    out[site] = [...byD.entries()].sort((x, y) => x[0] - y[0]).map(([distance, e]) => ({ distance, precision: mean(e.p), recall: mean(e.r) }));
  }
  return out;
}
