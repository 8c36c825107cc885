"""Sparsity-aware self-distillation of llama-family GGUF models (see python/README in the repo README)."""
