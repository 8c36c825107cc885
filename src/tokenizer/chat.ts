// Chat template rendering: the GGUF's tokenizer.chat_template (Jinja) through
// @huggingface/jinja, with the variables HF and llama.cpp pass to it.
import { Template } from "@huggingface/jinja";
import { ActiveflowError } from "../errors.js";
import type { ChatMessage } from "./types.js";

export interface ChatTemplateContext {
  bosToken: string;
  eosToken: string;
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(readonly source: string) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ActiveflowError("CHAT_TEMPLATE", `tokenizer.chat_template does not parse: ${(e as Error).message}`, { cause: e });
    }
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt: boolean, ctx: ChatTemplateContext): string {
    try {
      return this.template.render({
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: addGenerationPrompt,
        bos_token: ctx.bosToken,
        eos_token: ctx.eosToken,
      });
    } catch (e) {
      throw new ActiveflowError("CHAT_TEMPLATE", `tokenizer.chat_template failed to render: ${(e as Error).message}`, { cause: e });
    }
  }
}

// Thrown when a model has no template to apply.
export function noChatTemplate(path: string): ActiveflowError {
  return new ActiveflowError(
    "CHAT_TEMPLATE",
    `${path}: the model has no tokenizer.chat_template metadata; pass a prompt without chat formatting or a model with a template`,
  );
}
