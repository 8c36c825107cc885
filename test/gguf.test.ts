import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { readGguf, getString, getNumber, getStringArray, getNumberArray } from "../src/gguf/index.js";

const SMOL = join(homedir(), ".cache/activeflow/models/SmolLM2-135M-Instruct.Q4_1.gguf");

test("reads the real SmolLM2 header", async (t) => {
  if (!existsSync(SMOL)) {
    t.skip(`real model absent at ${SMOL}`);
    return;
  }
  const f = await readGguf(SMOL);
  assert.equal(f.version, 3);
  assert.equal(f.tensors.length, 272);
  assert.equal(getString(f, "general.architecture"), "llama");
  assert.equal(getString(f, "tokenizer.ggml.pre"), "smollm");
  assert.equal(getStringArray(f, "tokenizer.ggml.tokens").length, 49152);
  assert.equal(getNumberArray(f, "tokenizer.ggml.token_type").length, 49152);
  assert.equal(getNumber(f, "llama.embedding_length"), 576);
  assert.equal(getNumber(f, "llama.block_count"), 30);
  const embd = f.tensors.find((x) => x.name === "token_embd.weight");
  assert.deepEqual(embd?.dims, [576, 49152]);
  assert.equal(embd?.type, 8);
  assert.equal(embd?.bytes, (576 / 32) * 34 * 49152);
  // The last tensor ends exactly at the end of the file.
  const end = Math.max(...f.tensors.map((x) => f.dataOffset + x.offset + x.bytes));
  assert.equal(end, f.fileSize);
});
