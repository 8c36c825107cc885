// Every token's bytes and a byte trie over them, built once per tokenizer: constrained decoding
// walks the trie so tokens sharing a prefix share the walk, and a rejected prefix drops its
// whole subtree (most of a 49k vocabulary after one byte in a key or a number).
import type { Tokenizer } from "./types.js";

export interface TokenTrie {
  readonly vocabSize: number;
  // [vocab] the bytes each token writes (empty for control tokens, which the trie leaves out).
  readonly bytes: readonly Uint8Array[];
  // Nodes in preorder, node 0 the root; the children of node n are the entries
  // childStart[n] .. childStart[n] + childCount[n] of childByte / childNode.
  readonly childStart: Int32Array; // [nodes]
  readonly childCount: Int32Array; // [nodes]
  readonly childByte: Uint8Array; // [nodes - 1]
  readonly childNode: Int32Array; // [nodes - 1]
  // Tokens whose bytes end at node n: tokenIds[tokenStart[n] .. tokenStart[n + 1]).
  readonly tokenStart: Int32Array; // [nodes + 1]
  readonly tokenIds: Int32Array; // [tokens in the trie]
}

const tries = new WeakMap<Tokenizer, TokenTrie>();

// Control tokens (chat markers, end-of-generation) and tokens writing no bytes are not in the
// trie: a constraint allows them separately or never.
export function tokenTrie(tokenizer: Tokenizer): TokenTrie {
  let trie = tries.get(tokenizer);
  if (!trie) {
    trie = buildTokenTrie(tokenizer);
    tries.set(tokenizer, trie);
  }
  return trie;
}

// Tokens sorted by their bytes, inserted in that order: nodes are then numbered in preorder,
// each node's children come in byte order and the tokens ending at a node are consecutive, so
// the flat arrays fill in one pass without a map per node.
function buildTokenTrie(tokenizer: Tokenizer): TokenTrie {
  const n = tokenizer.vocabSize;
  const bytes: Uint8Array[] = new Array(n);
  const order: number[] = [];
  for (let id = 0; id < n; id++) {
    const b = tokenizer.isControl(id) || tokenizer.stopIds.has(id) ? new Uint8Array(0) : tokenizer.tokenBytes(id);
    bytes[id] = b;
    if (b.length > 0) order.push(id);
  }
  order.sort((x, y) => compareBytes(bytes[x]!, bytes[y]!) || x - y);
  const parent: number[] = [-1];
  const byteOf: number[] = [0];
  const tokenNode = new Int32Array(order.length);
  const path: number[] = [0]; // path[d]: the node at depth d of the previous token
  let prev: Uint8Array = new Uint8Array(0);
  order.forEach((id, k) => {
    const b = bytes[id]!;
    let common = 0;
    while (common < b.length && common < prev.length && b[common] === prev[common]) common++;
    path.length = common + 1;
    for (let d = common; d < b.length; d++) {
      const node = parent.length;
      parent.push(path[d]!);
      byteOf.push(b[d]!);
      path.push(node);
    }
    tokenNode[k] = path[b.length]!;
    prev = b;
  });
  const nodes = parent.length;
  const childCount = new Int32Array(nodes);
  for (let v = 1; v < nodes; v++) childCount[parent[v]!]!++;
  const childStart = new Int32Array(nodes);
  for (let v = 0, at = 0; v < nodes; v++) {
    childStart[v] = at;
    at += childCount[v]!;
  }
  const childByte = new Uint8Array(Math.max(0, nodes - 1));
  const childNode = new Int32Array(Math.max(0, nodes - 1));
  const filled = new Int32Array(nodes);
  for (let v = 1; v < nodes; v++) {
    const p = parent[v]!;
    const e = childStart[p]! + filled[p]!++;
    childByte[e] = byteOf[v]!;
    childNode[e] = v;
  }
  const tokenStart = new Int32Array(nodes + 1);
  for (let k = 0; k < order.length; k++) tokenStart[tokenNode[k]! + 1]!++;
  for (let v = 0; v < nodes; v++) tokenStart[v + 1]! += tokenStart[v]!;
  return { vocabSize: n, bytes, childStart, childCount, childByte, childNode, tokenStart, tokenIds: Int32Array.from(order) };
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const m = Math.min(a.length, b.length);
  for (let i = 0; i < m; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
