// Load on `activeflow serve`: concurrent streaming chat clients (the official openai package)
// against SmolLM2 under a DRAM budget, on loopback. Prints and saves time to first token
// (p50/p99, as clients see it: queueing included), decode and aggregate tok/s, failures by
// status (429 is by design when the queue is full), and the server's RSS when ready, after a
// warm-up round and after the run (a leak shows as growth after the warm-up).
//   node dist/bench/serve.js [--requests 200] [--concurrency 8] [--max-tokens 32] [--dram 50%] [--time-limit 900] [--warmup-per-client 4]
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { startServe } from "../test/helpers/server.js";
import { machineInfo } from "./lib/machine.js";
import { smollm2Model } from "./lib/models.js";
import { repoRoot } from "./lib/paths.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const REQUESTS = Number(arg("requests", "200"));
const CONCURRENCY = Number(arg("concurrency", "8"));
const MAX_TOKENS = Number(arg("max-tokens", "32"));
const DRAM = arg("dram", "50%");
const TIME_LIMIT_S = Number(arg("time-limit", "900"));
const WARMUP_PER_CLIENT = Number(arg("warmup-per-client", "4"));

const PROMPTS = [
  "Write a haiku about the sea.",
  "What is the capital of France?",
  "Give me three tips for learning to cook.",
  "Explain what a rainbow is to a child.",
  "Name a few animals that live in the desert.",
  "Why is the sky blue?",
  "Suggest a name for a small bakery.",
  "What should I pack for a weekend hike?",
];

interface Sample {
  status: number; // 200, or the error's status (0: no status, e.g. a dropped connection)
  ttftMs?: number;
  totalMs: number;
  completionTokens?: number;
  decodeTps?: number;
  message?: string;
}

function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function one(client: OpenAI, i: number): Promise<Sample> {
  const t0 = performance.now();
  let first: number | undefined;
  let usage: OpenAI.CompletionUsage | undefined;
  try {
    const stream = await client.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: PROMPTS[i % PROMPTS.length]! }],
      max_tokens: MAX_TOKENS,
      temperature: 0.7,
      seed: i,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      if (first === undefined && (chunk.choices[0]?.delta.content ?? "") !== "") first = performance.now();
      if (chunk.usage) usage = chunk.usage;
    }
    const end = performance.now();
    const n = usage?.completion_tokens ?? 0;
    return {
      status: 200, totalMs: end - t0, completionTokens: n,
      ...(first !== undefined ? { ttftMs: first - t0 } : {}),
      ...(first !== undefined && n > 1 && end > first ? { decodeTps: (n - 1) / ((end - first) / 1000) } : {}),
    };
  } catch (e) {
    return { status: e instanceof OpenAI.APIError ? e.status ?? 0 : 0, totalMs: performance.now() - t0, message: String(e) };
  }
}

// `count` requests from `concurrency` clients, each sending its next request when the last ends.
async function round(client: OpenAI, count: number, offset: number, deadline: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < count && performance.now() < deadline) {
      const i = offset + next++;
      samples.push(await one(client, i));
    }
  }));
  return samples;
}

async function rss(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)![1]);
}

async function main(): Promise<void> {
  const model = await smollm2Model();
  if (model.path === undefined) throw new Error(`SmolLM2 is not available: ${model.reason}`);
  const server = await startServe([model.path, "--dram", DRAM], process.env, 600_000);
  await server.ready();
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0, timeout: 600_000 });
  const rssReady = await rss(server.url);
  const deadline = performance.now() + TIME_LIMIT_S * 1000;
  // The heap and malloc's arenas keep growing for the first ~100 requests (then level off:
  // bench/results/serve-*.json), so one warm-up per client is not steady state; a leak shows as
  // growth over the second half of the measured requests.
  const warm = await round(client, WARMUP_PER_CLIENT * CONCURRENCY, 1_000_000, deadline);
  const rssWarm = await rss(server.url);
  const t0 = performance.now();
  const half = Math.floor(REQUESTS / 2);
  const first = await round(client, half, 0, deadline);
  const rssHalf = await rss(server.url);
  const samples = [...first, ...(await round(client, REQUESTS - half, half, deadline))];
  const wallS = (performance.now() - t0) / 1000;
  const rssAfter = await rss(server.url);
  server.child.kill("SIGTERM");
  const exitCode = await server.exited;

  const ok = samples.filter((s) => s.status === 200);
  const ttft = ok.flatMap((s) => (s.ttftMs !== undefined ? [s.ttftMs] : []));
  const tps = ok.flatMap((s) => (s.decodeTps !== undefined ? [s.decodeTps] : []));
  const tokens = ok.reduce((n, s) => n + (s.completionTokens ?? 0), 0);
  const byStatus: Record<string, number> = {};
  for (const s of [...warm, ...samples]) byStatus[s.status] = (byStatus[s.status] ?? 0) + 1;
  const summary = {
    requests_sent: samples.length,
    requests_ok: ok.length,
    by_status: byStatus,
    failures_other_than_429: [...warm, ...samples].filter((s) => s.status !== 200 && s.status !== 429).map((s) => s.message),
    ttft_ms_p50: percentile(ttft, 50),
    ttft_ms_p99: percentile(ttft, 99),
    decode_tokens_per_second_p50: percentile(tps, 50),
    aggregate_tokens_per_second: tokens / wallS,
    completion_tokens: tokens,
    wall_seconds: wallS,
    rss_ready_bytes: rssReady,
    rss_after_warmup_bytes: rssWarm,
    rss_after_bytes: rssAfter,
    rss_halfway_bytes: rssHalf,
    rss_growth_after_warmup: rssAfter / rssWarm - 1,
    rss_growth_second_half: rssAfter / rssHalf - 1,
    server_exit_code: exitCode,
  };
  const result = {
    bench: "serve",
    model: model.name,
    note: `${model.note}; loopback; one generation at a time (the others queue); TTFT includes the wait in the queue`,
    config: { requests: REQUESTS, concurrency: CONCURRENCY, max_tokens: MAX_TOKENS, dram: DRAM, warmup_requests: warm.length, time_limit_s: TIME_LIMIT_S },
    machine: machineInfo(),
    concurrent_activity: process.env.ACTIVEFLOW_BENCH_NOTE ?? "not stated",
    summary,
  };
  console.log(JSON.stringify(summary, null, 2));
  const dir = join(repoRoot(), "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `serve-${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}Z.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${file}`);
  if (exitCode !== 0) throw new Error(`the server exited with ${exitCode}: ${server.stderr()}`);
}

await main();
