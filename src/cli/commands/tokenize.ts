// `activeflow tokenize <model> <text>`: the ids and pieces of a text, encoded as `run` encodes
// a prompt. Reads only the model's header (no weights, no native addon).
import { jsonText } from "../output.js";
import type { OptionValues } from "../args.js";
import type { CliContext } from "./context.js";
import { readTextArg } from "./input.js";
import { resolveModelPath } from "./model.js";

export async function tokenizeCommand(ctx: CliContext, model: string, textArg: string, values: OptionValues): Promise<number> {
  const path = await resolveModelPath(model, ctx);
  const text = textArg === "-" ? await readTextArg(ctx, "-", "text") : textArg;
  const { readGguf } = await import("../../gguf/reader.js");
  const { createTokenizer } = await import("../../tokenizer/index.js");
  const tokenizer = createTokenizer(await readGguf(path));
  const ids = tokenizer.encode(text, { addSpecial: true });
  const utf8 = new TextDecoder("utf-8"); // lossy: a piece holding part of a character shows U+FFFD
  const pieces = ids.map((id) => (tokenizer.isControl(id) ? tokenizer.decode([id]) : utf8.decode(tokenizer.tokenBytes(id))));
  if (values.json === true) {
    ctx.stdout.write(`${jsonText({ model: path, tokens: ids.length, ids, pieces })}\n`);
    return 0;
  }
  const width = String(Math.max(0, ...ids)).length;
  for (const [i, id] of ids.entries()) ctx.stdout.write(`${String(id).padStart(width)} ${JSON.stringify(pieces[i])}\n`);
  ctx.stderr.write(`${ids.length} tokens\n`);
  return 0;
}
