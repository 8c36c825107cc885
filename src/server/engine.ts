// The part of the engine the server uses (src/engine/Engine.ts satisfies it structurally).
import type { FlashRunStats, GeneratedToken, GenerateOptions, GenerationStats } from "../engine/types.js";
import type { ChatMessage } from "../tokenizer/types.js";
import type { TokenPieces } from "./responses.js";

export interface ServerEngine {
  readonly contextLength: number;
  readonly tokenizer: TokenPieces;
  generate(prompt: string, options?: GenerateOptions): AsyncGenerator<GeneratedToken, GenerationStats, void>;
  chat(messages: ChatMessage[], options?: GenerateOptions): AsyncGenerator<GeneratedToken, GenerationStats, void>;
  dispose(): Promise<void>;
  // Under a DRAM budget only.
  readonly dramBudget?: number;
  setDramBudget?(budget: string | number, reason?: string): number;
  flashStats?(): FlashRunStats | undefined;
}
