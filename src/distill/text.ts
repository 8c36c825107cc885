// Training text for distillation: by default the dense model's own continuations of the
// calibration prompts (several seeds each), cached as token ids beside the text. Never the
// evaluation text (wiki.test.raw).
import { mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Engine } from "../engine/Engine.js";
import { cacheRoot } from "../fetch/cache.js";
import { CALIBRATION_PROMPTS } from "../sparsity/calibrate.js";

export interface TrainingText {
  ids: Int32Array; // token ids, windows of seqLen back to back
  text: string;
  source: string;
}

export interface SelfTextOptions {
  samples: number; // windows to write; prompt i % 16 with seed base + i
  seqLen: number; // tokens per window (prompt + continuation)
  seed?: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export function distillCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), "distill");
}

// Cache names carry the model's size and mtime so a replaced model does not reuse old text.
export async function selfTextCachePaths(model: string, o: SelfTextOptions, env: NodeJS.ProcessEnv = process.env): Promise<{ ids: string; text: string }> {
  const st = await stat(model);
  const stem = `${basename(model)}-${st.size}-${Math.floor(st.mtimeMs)}.n${o.samples}.l${o.seqLen}.seed${o.seed ?? 1}`;
  const dir = distillCacheDir(env);
  return { ids: join(dir, `${stem}.tokens.i32`), text: join(dir, `${stem}.text.txt`) };
}

// Each sample: a calibration prompt continued (temperature 0.8, top-k 40) to exactly seqLen tokens.
export async function generateSelfText(engine: Engine, o: SelfTextOptions): Promise<TrainingText> {
  const ids = new Int32Array(o.samples * o.seqLen);
  const parts: string[] = [];
  for (let i = 0; i < o.samples; i++) {
    const prompt = CALIBRATION_PROMPTS[i % CALIBRATION_PROMPTS.length]!;
    const promptIds = engine.tokenizer.encode(prompt, { addSpecial: true }).slice(0, o.seqLen - 1);
    const gen = engine.generate(promptIds, {
      maxTokens: o.seqLen - promptIds.length,
      temperature: 0.8,
      topK: 40,
      seed: (o.seed ?? 1) * 100_003 + i,
      stopAtEos: false,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const row = [...promptIds];
    let text = prompt;
    let r = await gen.next();
    while (!r.done) {
      row.push(r.value.id);
      text += r.value.text;
      r = await gen.next();
    }
    ids.set(row.slice(0, o.seqLen), i * o.seqLen);
    parts.push(text);
    o.onProgress?.((i + 1) / o.samples);
  }
  const source = `self-generated (${o.samples} continuations of ${CALIBRATION_PROMPTS.length} prompts, ${o.seqLen} tokens each)`;
  return { ids, text: parts.join("\n\n"), source };
}

// User text: tokenised and cut into whole windows of seqLen.
export function tokenizeUserText(engine: Engine, text: string, seqLen: number, maxTokens?: number): TrainingText {
  let all = engine.tokenizer.encode(text, { addSpecial: true });
  if (maxTokens !== undefined) all = all.slice(0, maxTokens);
  const n = Math.floor(all.length / seqLen) * seqLen;
  return { ids: Int32Array.from(all.slice(0, n)), text, source: "user text" };
}

async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

export async function saveTrainingText(paths: { ids: string; text: string }, t: TrainingText): Promise<void> {
  await mkdir(dirname(paths.ids), { recursive: true });
  await writeAtomic(paths.text, t.text);
  await writeAtomic(paths.ids, new Uint8Array(t.ids.buffer, t.ids.byteOffset, t.ids.byteLength));
}

export async function loadCachedIds(path: string): Promise<Int32Array | undefined> {
  try {
    const b = await readFile(path);
    return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  } catch {
    return undefined;
  }
}
