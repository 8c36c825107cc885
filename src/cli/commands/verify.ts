// `activeflow verify <converted file>`: every page against its CRC-32C. A bad page throws
// FLASH_CHECKSUM naming the extent and file offset; main prints that one line and exits 1.
import { basename } from "node:path";
import { ProgressLine } from "../progress.js";
import type { CliContext } from "./context.js";
import type { OptionValues } from "../args.js";
import { jsonText } from "../output.js";
import { resolveModelPath } from "./model.js";
import { mib } from "./table.js";

export async function verifyCommand(ctx: CliContext, file: string, values: OptionValues = {}): Promise<number> {
  const path = await resolveModelPath(file, ctx);
  const { verifyFlashFile } = await import("../../flash/open.js");
  const { defaultBackend } = await import("../../backends/default.js");
  const line = new ProgressLine(ctx.stderr);
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  try {
    const r = await verifyFlashFile(path, { checksum: defaultBackend(), signal: controller.signal, onProgress: (f) => line.update(`verifying ${basename(path)}`, f) });
    line.done();
    ctx.stdout.write(values.json === true
      ? `${jsonText({ path, ok: true, pages: r.pages, extent_bytes: r.bytes })}\n`
      : `ok: ${path}: ${r.pages} pages (${mib(r.bytes)} MiB of extents) match their CRC-32C\n`);
    return 0;
  } catch (e) {
    line.done();
    throw e;
  } finally {
    off();
  }
}
