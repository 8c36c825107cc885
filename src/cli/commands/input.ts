// Reading a prompt or text from a file or standard input ("-") for run and tokenize, and the
// --text files of calibrate, reorder, eval and distill.
import { readFile } from "node:fs/promises";
import { ActiveflowError } from "../../errors.js";
import type { CliContext } from "./context.js";

export async function readStdin(ctx: CliContext): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of ctx.stdin) chunks.push(typeof c === "string" ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

// The text of `file`, or of standard input for "-". `what` names it in errors ("prompt").
export async function readTextArg(ctx: CliContext, file: string, what: string): Promise<string> {
  let text: string;
  if (file === "-") {
    text = await readStdin(ctx);
  } else {
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (e as Error).message;
      throw new ActiveflowError("BAD_ARGUMENT", `cannot read the ${what} file "${file}": ${why}`);
    }
  }
  if (text === "") throw new ActiveflowError("BAD_ARGUMENT", `the ${what} from ${file === "-" ? "standard input" : `"${file}"`} is empty`);
  return text;
}

// The --text file of calibrate, reorder, eval and distill. An empty (or all-whitespace) file
// is refused here, naming it: every one of them would otherwise run on no text at all.
export async function readTextFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new ActiveflowError("BAD_ARGUMENT", `cannot read text file ${file}: ${(e as Error).message}`);
  }
  if (text.trim() === "") throw new ActiveflowError("BAD_ARGUMENT", `text file ${file} is empty${text === "" ? "" : " (only whitespace)"}`);
  return text;
}
