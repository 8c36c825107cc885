// What a command needs from the outside world, passed in so tests can run commands in-process
// with captured streams and a fake engine.
import type { ChatMessage } from "../../tokenizer/types.js";
import type { FlashRunStats, GeneratedToken, GenerateOptions, GenerationStats, LoadOptions } from "../../engine/types.js";

// The part of Engine the CLI uses (src/engine/Engine.ts satisfies it structurally).
export interface EngineLike {
  readonly modelBytes: number;
  generate(prompt: string, options?: GenerateOptions): AsyncGenerator<GeneratedToken, GenerationStats, void>;
  chat(messages: ChatMessage[], options?: GenerateOptions): AsyncGenerator<GeneratedToken, GenerationStats, void>;
  dispose(): Promise<void>;
  // Context length in tokens (chat's /stats), and the one the model was trained with (--ctx
  // above it is warned about).
  readonly contextLength?: number;
  readonly trainedContext?: number;
  // Flash mode only (--dram): run-time budget changes and counters (--dram-schedule).
  setDramBudget?(budget: string | number, reason?: string): number;
  flashStats?(): FlashRunStats | undefined;
  readonly dramBudget?: number;
  // serve: token bytes for logprobs.
  readonly tokenizer?: { tokenBytes(id: number): Uint8Array };
}

export type LoadEngine = (path: string, options: LoadOptions) => Promise<EngineLike>;

export interface CliStream {
  write(s: string): unknown;
  isTTY?: boolean;
}

export interface CliContext {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: CliStream & NodeJS.WritableStream;
  stderr: CliStream & NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  loadEngine: LoadEngine;
  // Subscribes to Ctrl-C (SIGINT); returns the function that unsubscribes.
  onInterrupt(handler: () => void): () => void;
  // Subscribes to SIGTERM (serve drains its requests); without subscribers SIGTERM exits 143.
  // Returns the function that unsubscribes. Absent in contexts that never get signals.
  onTerminate?(handler: () => void): () => void;
}
