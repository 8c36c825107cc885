// The OpenAI-compatible HTTP server (fastify): routes, API-key check, error shapes, the
// generation queue, metrics, and a stop that lets running generations finish.
import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import { fastify, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { isActiveflowError } from "../errors.js";
import { CANCELLED, complete, stream, type Outcome } from "./completions.js";
import { BODY_LIMIT_BYTES } from "./defaults.js";
import type { ServerEngine } from "./engine.js";
import { badRequest, statusError, toApiError } from "./errors.js";
import { ServerMetrics } from "./metrics.js";
import { GenerationQueue, QueueFullError } from "./queue.js";
import { chatJob, completionJob, type Job } from "./requests.js";
import { budgetBodySchema, chatBodySchema, completionBodySchema, type BudgetBody, type ChatBody, type CompletionBody } from "./schemas.js";

export interface ServerOptions {
  // The id /v1/models lists and answers carry.
  modelId: string;
  // When set, every route but /health needs `Authorization: Bearer <key>`.
  apiKey: string | undefined;
  maxQueue: number;
  // Served under a DRAM budget (--dram): /v1/budget and the budget metrics apply.
  budgeted: boolean;
  // One line per generation and per failed request.
  log: (line: string) => void;
}

type State = "loading" | "ready" | "stopping";

// While stopping: how often idle keep-alive connections are closed.
const IDLE_SWEEP_MS = 100;

export class ApiServer {
  readonly app: FastifyInstance;
  readonly queue: GenerationQueue;
  readonly metrics = new ServerMetrics();
  private engine: ServerEngine | undefined;
  private state: State = "loading";
  private readonly created = Math.floor(Date.now() / 1000);
  // Aborts every generation, running or queued (drain time over, or a second stop).
  private readonly cancelAll = new AbortController();
  private closing: Promise<void> | undefined;
  private onStopped!: () => void;
  // Resolves once a stop has finished: no request in flight, nothing listening.
  readonly stopped = new Promise<void>((resolve) => {
    this.onStopped = resolve;
  });
  // Replies written by hand (streams); fastify's onResponse does not see them.
  private readonly hijacked = new WeakSet<FastifyRequest>();

  constructor(private readonly options: ServerOptions) {
    this.queue = new GenerationQueue(options.maxQueue);
    this.app = fastify({
      logger: false,
      bodyLimit: BODY_LIMIT_BYTES,
      forceCloseConnections: "idle",
      // No coercion ("1" is not 1) and nothing removed: the body is checked as sent.
      ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allowUnionTypes: true } },
    });
    this.routes();
  }

  // Listens; port 0 picks a free one. Returns the address.
  async listen(host: string, port: number): Promise<{ url: string; host: string; port: number }> {
    await this.app.listen({ host, port });
    const addr = this.app.server.address() as AddressInfo;
    const shown = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    return { url: `http://${shown}:${addr.port}`, host: addr.address, port: addr.port };
  }

  // The model is loaded: requests are served from now on.
  setEngine(engine: ServerEngine): void {
    this.engine = engine;
    if (this.state === "loading") this.state = "ready";
  }

  get stopping(): boolean {
    return this.state === "stopping";
  }

  // Stops taking requests and resolves once running and queued ones have finished; after
  // drainMs (or at once on a second call) they are cancelled. Idempotent.
  stop(drainMs: number): Promise<void> {
    if (this.closing) {
      this.cancelAll.abort();
      return this.closing;
    }
    this.state = "stopping";
    const timer = setTimeout(() => this.cancelAll.abort(), drainMs);
    timer.unref();
    // A keep-alive connection whose last answer ends after the stop began would otherwise hold
    // the close for the keep-alive timeout: close each as soon as it is idle.
    const sweep = setInterval(() => this.app.server.closeIdleConnections(), IDLE_SWEEP_MS);
    this.closing = this.app.close().finally(() => {
      clearTimeout(timer);
      clearInterval(sweep);
      this.onStopped();
    });
    return this.closing;
  }

  private routes(): void {
    const app = this.app;
    app.addHook("onRequest", async (request) => {
      if (this.options.apiKey === undefined || request.routeOptions.url === "/health") return;
      if (!keyMatches(request.headers.authorization, this.options.apiKey)) {
        throw statusError(401, "missing or wrong API key: send the header `Authorization: Bearer <key>`", "invalid_api_key");
      }
    });
    app.addHook("onResponse", async (request, reply) => {
      if (!this.hijacked.has(request)) this.metrics.request(request.routeOptions.url ?? "unknown", reply.statusCode);
    });
    app.setErrorHandler(async (e, request, reply) => {
      const err = toApiError(e);
      if (err.status >= 500 || isActiveflowError(e)) this.options.log(`${request.method} ${request.url} ${err.status}: ${err.message}`);
      return reply.code(err.status).send(err.body());
    });
    app.setNotFoundHandler(async (request) => {
      throw statusError(404, `no route ${request.method} ${request.url.split("?")[0]}`, "not_found");
    });

    app.get("/health", async (_request, reply) => {
      if (this.state === "ready") return { status: "ok" };
      return reply.code(503).send({ status: this.state });
    });
    app.get("/v1/models", async () => ({ object: "list", data: [this.modelObject()] }));
    app.get<{ Params: { id: string } }>("/v1/models/:id", async (request) => {
      if (request.params.id !== this.options.modelId) throw statusError(404, `model "${request.params.id}" is not served here; this server serves "${this.options.modelId}"`, "model_not_found");
      return this.modelObject();
    });
    app.get("/metrics", async (_request, reply) => {
      reply.type("text/plain; version=0.0.4; charset=utf-8");
      return this.metrics.render(this.metricsState());
    });
    app.post<{ Body: ChatBody }>("/v1/chat/completions", { schema: { body: chatBodySchema } }, async (request, reply) =>
      this.generate(request, reply, chatJob(request.body, this.ready().contextLength)),
    );
    app.post<{ Body: CompletionBody }>("/v1/completions", { schema: { body: completionBodySchema } }, async (request, reply) =>
      this.generate(request, reply, completionJob(request.body, this.ready().contextLength)),
    );
    app.get("/v1/budget", async () => this.budget());
    app.post<{ Body: BudgetBody }>("/v1/budget", { schema: { body: budgetBodySchema } }, async (request) => {
      const engine = this.budgeted();
      engine.setDramBudget!(request.body.dram, "POST /v1/budget");
      this.options.log(`DRAM budget set to ${request.body.dram} (${engine.dramBudget} bytes) by POST /v1/budget`);
      return this.budget();
    });
  }

  private modelObject() {
    return { id: this.options.modelId, object: "model", created: this.created, owned_by: "activeflow" };
  }

  private ready(): ServerEngine {
    if (this.state === "stopping") throw statusError(503, "the server is stopping", "server_stopping");
    if (!this.engine) throw statusError(503, "the model is loading; retry when GET /health answers 200", "model_loading");
    return this.engine;
  }

  private budgeted(): ServerEngine {
    const engine = this.ready();
    if (!this.options.budgeted || engine.setDramBudget === undefined) {
      throw badRequest("the DRAM budget can be changed only when the model is served with --dram", null, "no_dram_budget");
    }
    return engine;
  }

  // The budget in force (a change asked for during a generation counts from its next token)
  // and what the cache and weights hold (as of the last generation while one runs).
  private budget() {
    const engine = this.budgeted();
    const f = this.flashNow();
    return { dram_budget_bytes: engine.dramBudget ?? f?.dramBudgetBytes ?? 0, cache_bytes: f?.cacheBytes ?? 0, weight_resident_bytes: f?.weightResidentBytes ?? 0 };
  }

  // The engine's flash counters are read between generations only (native code updates them
  // while one runs); during one, the last reading stands.
  private flashNow() {
    if (this.options.budgeted && this.engine && !this.queue.busy) this.lastFlash = this.engine.flashStats?.();
    return this.lastFlash;
  }
  private lastFlash: ReturnType<NonNullable<ServerEngine["flashStats"]>>;

  private metricsState() {
    const e = this.engine;
    const flash = this.flashNow();
    return {
      loaded: e !== undefined,
      running: this.queue.busy ? 1 : 0,
      waiting: this.queue.length,
      dramBudgetBytes: this.options.budgeted && e ? e.dramBudget ?? flash?.dramBudgetBytes : undefined,
      flash,
      rssBytes: process.memoryUsage.rss(),
    };
  }

  // Queues the job, runs it, answers. A client that goes away cancels it, queued or running.
  private async generate(request: FastifyRequest, reply: FastifyReply, job: Job): Promise<unknown> {
    const engine = this.ready();
    const route = request.routeOptions.url ?? request.url;
    const client = new AbortController();
    const res = reply.raw;
    const onClose = () => {
      if (!res.writableFinished) client.abort();
    };
    res.on("close", onClose);
    const signal = AbortSignal.any([client.signal, this.cancelAll.signal]);
    let release: () => void;
    try {
      release = await this.queue.acquire(signal);
    } catch (e) {
      res.off("close", onClose);
      if (e instanceof QueueFullError) throw statusError(429, e.message, "queue_full");
      if (client.signal.aborted) return this.gone(request, reply);
      throw CANCELLED;
    }
    const t0 = performance.now();
    let outcome: Outcome | undefined;
    try {
      if (job.stream) {
        outcome = await stream(engine, job, this.options.modelId, signal, res, () => {
          this.hijacked.add(request);
          reply.hijack();
          res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", ...(this.stopping ? { connection: "close" } : {}) });
        });
      } else {
        outcome = await complete(engine, job, this.options.modelId, signal);
      }
    } finally {
      release();
      res.off("close", onClose);
      if (outcome?.stats) this.metrics.generation(outcome.stats);
    }
    const stats = outcome.stats!;
    const status = stats.stopReason === "aborted" && !client.signal.aborted && !job.stream ? 503 : 200;
    this.options.log(
      `${request.method} ${route} ${client.signal.aborted ? "client gone" : status}${job.stream ? " stream" : ""}: ${stats.promptTokens} prompt tokens (${stats.reusedTokens} reused) + ` +
        `${stats.generatedTokens} generated, ${stats.stopReason}, ${stats.decodeTokensPerSecond.toFixed(1)} tok/s, ${((performance.now() - t0) / 1000).toFixed(2)} s`,
    );
    if (outcome.streamed) {
      this.metrics.request(route, 200);
      return reply;
    }
    if (client.signal.aborted) return this.gone(request, reply);
    if (status === 503) throw CANCELLED;
    return outcome.body;
  }

  // The client closed its connection: nothing to send.
  private gone(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    this.hijacked.add(request);
    reply.hijack();
    if (!reply.raw.destroyed) reply.raw.destroy();
    this.metrics.request(request.routeOptions.url ?? request.url, 499);
    return reply;
  }
}

// Constant-time comparison of `Authorization: Bearer <key>` with the key.
function keyMatches(header: string | undefined, key: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  if (!m) return false;
  const a = Buffer.from(m[1]!.trim()), b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

