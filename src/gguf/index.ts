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
  type NumberArray,
} from "./reader.js";
export {
  GgufWriter,
  tensorBytes,
  u8, i8, u16, i16, u32, i32, f32, f64, u64, i64, bool, str,
  strArr, i32Arr, u32Arr, f32Arr, arr,
  type GgufWriteValue,
  type GgufWriterTensor,
  type GgufWriterOptions,
  type TensorData,
} from "./writer.js";
