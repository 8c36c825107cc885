// Public surface of the GGUF module: types, reader with typed accessors, writer.
export * from "./types.js";
export {
  readGguf,
  DEFAULT_ALIGNMENT,
  TYPED_ARRAY_MIN,
  getString,
  getOptionalString,
  getNumber,
  getOptionalNumber,
  getOptionalBool,
  getStringArray,
  getOptionalStringArray,
  getNumberArray,
  getOptionalNumberArray,
  findTensor,
} from "./reader.js";
