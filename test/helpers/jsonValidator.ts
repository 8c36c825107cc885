// An independent check of structured output: ajv (draft 2020-12) validates a value against the
// schema it was generated for. "json" is OpenAI's json_object: any JSON object.
import Ajv2020Module from "ajv/dist/2020.js";
import type { JsonSchema } from "../../src/structured/schema.js";

// ajv is CommonJS: its class is the module's default export under NodeNext.
const Ajv2020 = ((Ajv2020Module as unknown as { default?: unknown }).default ?? Ajv2020Module) as unknown as new (o: object) => {
  compile(s: object | boolean): ((v: unknown) => boolean) & { errors?: unknown };
};
const ajv = new Ajv2020({ strict: false, allErrors: true });

// A validator for `schema`: undefined for a valid value, else ajv's errors as JSON.
export function validator(schema: JsonSchema | "json"): (v: unknown) => string | undefined {
  const v = ajv.compile(schema === "json" ? { type: "object" } : (schema as object | boolean));
  return (value) => (v(value) ? undefined : JSON.stringify(v.errors));
}
