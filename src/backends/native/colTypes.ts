// Types of the addon's column gather-axpy entry points (native/addon/col_binding.cpp), the
// sparse linear layer over transposed flash columns (activeflow/col_kernels.h). For tests and
// benchmarks: synchronous, small inputs. Bad arguments throw an Error with code "BAD_ARGUMENT".
export interface ColBindings {
  // y[e] += sum_i a[i] * dequant(cols[i])[e] for e in [e0, e1), in place on y (indexed from
  // 0). One column per a[i]; e0 and e1 are multiples of the type's block size (any e1 for
  // the float types); every column holds at least elements [0, e1).
  colAxpy(type: number, cols: Uint8Array[], a: Float32Array, y: Float32Array, e0: number, e1: number): void;
  // Batched form: a is [nb][cols.length] row-major, y is [nb][ldy]; row b gets exactly what
  // colAxpy with a's row b would give it.
  colAxpyBatch(
    type: number,
    cols: Uint8Array[],
    a: Float32Array,
    nb: number,
    y: Float32Array,
    ldy: number,
    e0: number,
    e1: number,
  ): void;
}
