// `--json-schema FILE` (run, chat): the schema is read and compiled before the model loads, so
// an unreadable or unsupported schema fails at once, in one line naming the file and the field.
import { readFile } from "node:fs/promises";
import { ActiveflowError } from "../../errors.js";
import { compileJsonSchema, type JsonSchema } from "../../structured/schema.js";

export async function readJsonSchema(file: string): Promise<JsonSchema> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (e as Error).message;
    throw new ActiveflowError("BAD_SCHEMA", `cannot read the JSON schema file "${file}": ${why}`);
  }
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (e) {
    throw new ActiveflowError("BAD_SCHEMA", `${file}: not valid JSON (${(e as Error).message})`);
  }
  compileJsonSchema(schema as JsonSchema, file);
  return schema as JsonSchema;
}
