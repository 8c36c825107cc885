// In-memory description of a GGUF file: metadata and tensor infos. Tensor bytes are never
// loaded here; the backend maps them from the file by offset.

// GGUF metadata value types (GGUF spec numbering).
export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

// Tensor types the engine supports; numeric ids are GGML's. I8 and I32 hold raw data only
// (the flash layout's split-column extents and page checksums), never weights.
export enum GgmlType {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, I8 = 24, I32 = 26, BF16 = 30,
}

export const SUPPORTED_TYPES: ReadonlySet<number> = new Set([0, 1, 2, 3, 8, 12, 13, 14, 24, 26, 30]);

// [elements per block, bytes per block] for each supported type.
export const TYPE_LAYOUT: Readonly<Record<number, readonly [number, number]>> = {
  [GgmlType.F32]: [1, 4],
  [GgmlType.F16]: [1, 2],
  [GgmlType.BF16]: [1, 2],
  [GgmlType.Q4_0]: [32, 18],
  [GgmlType.Q4_1]: [32, 20],
  [GgmlType.Q8_0]: [32, 34],
  [GgmlType.Q4_K]: [256, 144],
  [GgmlType.Q5_K]: [256, 176],
  [GgmlType.Q6_K]: [256, 210],
  [GgmlType.I8]: [1, 1],
  [GgmlType.I32]: [1, 4],
};

export function typeName(t: number): string {
  return GgmlType[t] ?? `type#${t}`;
}

// A metadata value as read: numbers (bigint for 64-bit ints), strings, booleans, arrays.
// Large arrays of numbers come back as typed arrays (token scores, token types).
export type GgufValue =
  | number
  | bigint
  | string
  | boolean
  | GgufValue[]
  | Float32Array
  | Int32Array
  | Uint32Array;

export interface GgufTensorInfo {
  name: string;
  // GGML order: dims[0] is the contiguous (row) length; a 2-D weight [n_in, n_out].
  dims: number[];
  type: number;
  // Offset of the tensor's data relative to dataOffset.
  offset: number;
  // Bytes of the tensor's data.
  bytes: number;
}

export interface GgufFile {
  path: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  // Absolute file offset of the tensor data section.
  dataOffset: number;
  fileSize: number;
}
