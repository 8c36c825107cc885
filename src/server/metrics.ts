// Counters and gauges for GET /metrics, in Prometheus' text exposition format (version 0.0.4).
import type { FlashRunStats, GenerationStats } from "../engine/types.js";

// What the server knows at the moment of a scrape.
export interface MetricsState {
  loaded: boolean;
  running: number;
  waiting: number;
  // Under a DRAM budget (--dram): the budget in force and the counters now.
  dramBudgetBytes: number | undefined;
  flash: FlashRunStats | undefined;
  rssBytes: number;
}

interface Metric {
  name: string;
  type: "counter" | "gauge";
  help: string;
  samples: { labels?: Record<string, string>; value: number }[];
}

export class ServerMetrics {
  private readonly requests = new Map<string, number>(); // "route status" -> count
  private promptTokens = 0;
  private prefillTokens = 0;
  private generatedTokens = 0;
  private decodeSeconds = 0;
  private lastDecodeTps = 0;
  private cancelled = 0;
  private flashBytesRead = 0;
  private lastCacheHitRate: number | undefined;

  request(route: string, status: number): void {
    const key = `${route} ${status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  generation(stats: GenerationStats): void {
    this.promptTokens += stats.promptTokens;
    this.prefillTokens += stats.prefillTokens;
    this.generatedTokens += stats.generatedTokens;
    this.decodeSeconds += stats.decodeSeconds;
    if (stats.decodeTokensPerSecond > 0) this.lastDecodeTps = stats.decodeTokensPerSecond;
    if (stats.stopReason === "aborted") this.cancelled++;
    if (stats.flash) {
      // The engine's flash counters restart with each generation: this one's are its own.
      this.flashBytesRead += stats.flash.flashBytesRead;
      this.lastCacheHitRate = stats.flash.cacheHitRate;
    }
  }

  render(s: MetricsState): string {
    const metrics: Metric[] = [
      { name: "activeflow_model_loaded", type: "gauge", help: "1 once the model is loaded and requests are served.", samples: [{ value: s.loaded ? 1 : 0 }] },
      {
        name: "activeflow_requests_total", type: "counter", help: "Answered requests by route and HTTP status.",
        samples: [...this.requests].map(([k, value]) => {
          const [route, status] = k.split(" ");
          return { labels: { route: route!, status: status! }, value };
        }),
      },
      { name: "activeflow_requests_running", type: "gauge", help: "Generations running (at most 1: one model, one KV cache).", samples: [{ value: s.running }] },
      { name: "activeflow_queue_length", type: "gauge", help: "Requests waiting for the running generation to end.", samples: [{ value: s.waiting }] },
      { name: "activeflow_generations_cancelled_total", type: "counter", help: "Generations stopped early because their client went away (or the server stopped).", samples: [{ value: this.cancelled }] },
      { name: "activeflow_prompt_tokens_total", type: "counter", help: "Prompt tokens of all generations (prefilled or reused from the KV cache).", samples: [{ value: this.promptTokens }] },
      { name: "activeflow_prefill_tokens_total", type: "counter", help: "Prompt tokens evaluated (not reused from the KV cache).", samples: [{ value: this.prefillTokens }] },
      { name: "activeflow_generated_tokens_total", type: "counter", help: "Tokens generated.", samples: [{ value: this.generatedTokens }] },
      { name: "activeflow_decode_seconds_total", type: "counter", help: "Time spent decoding after each generation's first token.", samples: [{ value: this.decodeSeconds }] },
      { name: "activeflow_decode_tokens_per_second", type: "gauge", help: "Decode speed of the last generation that decoded more than one token.", samples: [{ value: this.lastDecodeTps }] },
      { name: "process_resident_memory_bytes", type: "gauge", help: "Resident set size of the server process.", samples: [{ value: s.rssBytes }] },
    ];
    if (s.dramBudgetBytes !== undefined) {
      metrics.push(
        { name: "activeflow_dram_budget_bytes", type: "gauge", help: "DRAM budget in force (weights, KV cache, scratch).", samples: [{ value: s.dramBudgetBytes }] },
        { name: "activeflow_weight_resident_bytes", type: "gauge", help: "Weight bytes held now (resident tensors, staging, preload buffers, hot cache).", samples: [{ value: s.flash?.weightResidentBytes ?? 0 }] },
        { name: "activeflow_cache_bytes", type: "gauge", help: "Hot-cache size the budget leaves.", samples: [{ value: s.flash?.cacheBytes ?? 0 }] },
        { name: "activeflow_kv_cache_bytes", type: "gauge", help: "KV cache bytes.", samples: [{ value: s.flash?.kvBytes ?? 0 }] },
        { name: "activeflow_flash_bytes_read_total", type: "counter", help: "Bytes read from the flash layout by all generations.", samples: [{ value: this.flashBytesRead }] },
        { name: "activeflow_cache_hit_rate", type: "gauge", help: "Share of active channels found in the hot cache during the last generation.", samples: [{ value: this.lastCacheHitRate ?? 0 }] },
      );
    }
    return metrics.map(format).join("");
  }
}

function format(m: Metric): string {
  const lines = [`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`];
  for (const s of m.samples) {
    const labels = s.labels ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`).join(",")}}` : "";
    lines.push(`${m.name}${labels} ${Number.isFinite(s.value) ? s.value : 0}`);
  }
  return lines.join("\n") + "\n";
}
