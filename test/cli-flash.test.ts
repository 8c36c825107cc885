// The swapping commands end to end, in-process with the real engine on a tiny synthetic model:
// synth -> convert -> verify -> calibrate -> eval -> run --dram, and their failure lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, open, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openFlashModel } from "../src/flash/open.js";
import { calibrationPath } from "../src/sparsity/store.js";
import { runCli, useTempCache } from "./helpers/cli.js";

let dir = "";
// run --dram on a .gguf converts into the cache: keep it inside the temp dir.
useTempCache("af-cli-flash-", (d) => {
  dir = d;
});

const cli = (argv: string[]) => runCli(argv);

test("synth, convert, verify, calibrate, eval and run --dram on a tiny model", async () => {
  const gguf = join(dir, "tiny.gguf"), flash = join(dir, "tiny.af.gguf");

  const s = await cli(["synth", "--shape", "tiny", "--type", "q8_0", gguf, "--seed", "2"]);
  assert.equal(s.code, 0, s.err);
  assert.equal(s.out, `${gguf}\n`);
  assert.match(s.err, /wrote tiny\.gguf \(tiny, q8_0\)/);
  assert.deepEqual((await readdir(dir)).sort(), ["tiny.gguf"], "no temporary files left");

  const c = await cli(["convert", gguf, flash, "--group-size", "1", "--json"]);
  assert.equal(c.code, 0, c.err);
  const report = JSON.parse(c.out.trim()) as { schema: number; group_size: number; sites: { site: string; column_type: string; quant_error: number }[]; file_bytes: number };
  assert.equal(report.schema, 2);
  assert.equal(report.group_size, 1);
  assert.deepEqual(report.sites.map((x) => x.site), ["attn_in", "attn_out", "ffn_in", "ffn_out"]);
  assert.equal(report.file_bytes, (await stat(flash)).size);
  for (const k of Object.keys(report)) assert.match(k, /^[a-z0-9_]+$/, `convert --json key ${k} is snake_case`);
  const table = await cli(["convert", gguf, join(dir, "tiny2.af.gguf"), "--column-type", "f16"]);
  assert.equal(table.code, 0, table.err);
  assert.match(table.out, /^site +n_in +tensors +source +column +quant_err +MiB +scales MiB\nattn_in +64 +attn_q,attn_k,attn_v +Q8_0 +F16 /);

  const v = await cli(["verify", flash]);
  assert.equal(v.code, 0, v.err);
  assert.match(v.out, /^ok: .*tiny\.af\.gguf: \d+ pages/);

  // A flipped byte: one error line naming the extent and the page's file offset, exit 1.
  const fm = await openFlashModel(flash);
  const e = fm.extents[1]!;
  const bad = join(dir, "bad.af.gguf");
  await copyFile(flash, bad);
  const fh = await open(bad, "r+");
  await fh.write(new Uint8Array([0xff ^ (await fh.read(new Uint8Array(1), 0, 1, e.offset + 10)).buffer[0]!]), 0, 1, e.offset + 10);
  await fh.close();
  const vb = await cli(["verify", bad]);
  assert.equal(vb.code, 1);
  const errLines = vb.err.split("\n").filter((l) => l.startsWith("error: "));
  assert.equal(errLines.length, 1, vb.err);
  assert.match(errLines[0]!, new RegExp(`extent ${e.name}: page 0 at file offset ${e.offset} fails its CRC-32C check`));

  // Sparsity without a calibration table names the command to run.
  const nocal = await cli(["run", gguf, "-p", "hello", "-n", "4", "--dram", "64MB", "--sparsity", "0.5"]);
  assert.equal(nocal.code, 1);
  assert.match(nocal.err, /run `activeflow calibrate .*tiny\.gguf` first\n$/);
  const evalNocal = await cli(["eval", flash, "--text", gguf, "--sparsity", "0.5"]);
  assert.equal(evalNocal.code, 1);
  assert.match(evalNocal.err, /run `activeflow calibrate .*tiny\.af\.gguf` first\n$/);

  // Calibrating the GGUF also writes the table into its cached conversion's header (made just above).
  const cal = await cli(["calibrate", gguf, "--tokens", "160", "--method", "uniform", "--json"]);
  assert.equal(cal.code, 0, cal.err);
  const cj = JSON.parse(cal.out.trim()) as { paths: string[] };
  assert.equal(cj.paths[0], calibrationPath(gguf));
  assert.equal(cj.paths.length, 2, `a cached conversion's table too: ${cj.paths.join(", ")}`);
  assert.match(cj.paths[1]!, /cache\/flash\/tiny-\d+-\d+\.g\d+\.\w+\.af\.gguf$/);

  const text = join(dir, "eval.txt");
  await writeFile(text, "the cat sat on the mat and looked at the dog. ".repeat(20));
  const ev = await cli(["eval", gguf, "--text", text, "--sparsity", "0.5", "--max-tokens", "200", "--window", "64", "--json"]);
  assert.equal(ev.code, 0, ev.err);
  const ej = JSON.parse(ev.out.trim()) as {
    ppl: number; ppl_dense: number; kl_to_dense: number; top1_agreement: number; tokens: number; sparsity: number;
    active_fraction: Record<string, number>;
  };
  for (const k of ["ppl", "ppl_dense", "kl_to_dense", "top1_agreement", "tokens", "sparsity"] as const) assert.equal(typeof ej[k], "number", k);
  assert.equal(ej.sparsity, 0.5);
  assert.ok(ej.tokens > 150 && ej.tokens <= 200, `${ej.tokens} tokens`);
  assert.ok(ej.kl_to_dense > 0 && ej.top1_agreement > 0 && ej.top1_agreement <= 1);
  assert.ok(Math.abs(ej.active_fraction.q! - 0.5) < 0.1, `q active ${ej.active_fraction.q}`);
  const evTable = await cli(["eval", gguf, "--text", text, "--max-tokens", "100", "--window", "64"]);
  assert.equal(evTable.code, 0, evTable.err);
  assert.match(evTable.out, /^sparsity +tokens +ppl +ppl_dense +kl_to_dense +top1_agreement\n +0 +\d+ /);
  // The flash file (split columns) against its source run dense: only the activations' 8-bit
  // rounding in the dense matmuls differs, so KL is near 0.
  const evRef = await cli(["eval", flash, "--reference", gguf, "--text", text, "--max-tokens", "100", "--window", "64", "--json"]);
  assert.equal(evRef.code, 0, evRef.err);
  const refj = JSON.parse(evRef.out.trim()) as { kl_to_dense: number; top1_agreement: number; reference: string };
  assert.equal(refj.reference, gguf);
  assert.ok(refj.kl_to_dense > 0 && refj.kl_to_dense < 0.01 && refj.top1_agreement > 0.9, `KL ${refj.kl_to_dense}, top-1 ${refj.top1_agreement}`);
  const other = join(dir, "small.gguf");
  assert.equal((await cli(["synth", "--shape", "small", "--type", "q8_0", other])).code, 0);
  for (const [ref, msg] of [
    [other, /^error: --reference .*small\.gguf: its vocabulary has 512 tokens, .*tiny\.af\.gguf has 320; they must be the same model family\n$/],
    [join(dir, "missing.gguf"), /^error: .*missing\.gguf.*\n$/],
  ] as const) {
    const bad = await cli(["eval", flash, "--reference", ref, "--text", text, "--max-tokens", "100", "--window", "64"]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, msg);
    assert.equal(bad.err.split("\n").filter((l) => l !== "").length, 1, bad.err);
  }

  const run = await cli(["run", gguf, "-p", "hello world", "-n", "6", "--greedy", "--dram", "64MB", "--sparsity", "0.5", "--verify-reads", "--json"]);
  assert.equal(run.code, 0, run.err);
  const rj = JSON.parse(run.out.trim()) as Record<string, unknown>;
  for (const k of [
    "dram_budget_bytes", "weight_resident_bytes_peak", "flash_bytes_read", "flash_reads", "mean_read_bytes", "cache_hit_rate",
    "active_fraction", "io_wait_s", "compute_s", "sparsity", "kv_bytes", "cache_bytes", "head_resident",
  ]) assert.ok(k in rj, `run --json lacks ${k}`);
  assert.equal(rj.dram_budget_bytes, 64 << 20);
  assert.equal(rj.sparsity, 0.5);
  assert.match(run.err, /\nflash: budget 64\.0 MiB/);

  // Too small a budget: the planner's one line, naming the minimum.
  const small = await cli(["run", flash, "-p", "hello", "-n", "4", "--dram", "1MB"]);
  assert.equal(small.code, 1);
  assert.match(small.err, /^error: a DRAM budget of 1\.0 MiB is below this model's minimum of [\d.]+ MiB \(.*\)\n$/);
});
