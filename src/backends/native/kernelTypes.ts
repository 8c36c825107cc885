// Types of the addon's kernel entry points (native/addon/kernels_binding.cpp).
// Used by kernel tests and tools; the engine itself goes through the model bindings.
export interface KernelBindings {
  isaName(): string;
  // Forces an ISA path ("scalar" | "avx2" | "avx512"); throws if this CPU lacks it.
  isaSet(name: string): void;
  // Paths this CPU can run, e.g. ["scalar", "avx2", "avx512"].
  isaAvailable(): string[];
}
