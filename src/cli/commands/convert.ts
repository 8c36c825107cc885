// `activeflow convert <in.gguf> <out>`: the flash layout, with a progress bar on stderr and
// the converter's report as a table (or one JSON line).
import { basename, resolve } from "node:path";
import { GgmlType } from "../../gguf/types.js";
import type { OptionValues } from "../args.js";
import { ProgressLine } from "../progress.js";
import type { CliContext } from "./context.js";
import { resolveModelPath } from "./model.js";
import { formatTable, mib } from "./table.js";
import { jsonText } from "../output.js";
import type { ConvertReport } from "../../flash/convert.js";

export async function convertCommand(ctx: CliContext, input: string, output: string, values: OptionValues): Promise<number> {
  const inPath = await resolveModelPath(input, ctx);
  const outPath = resolve(output);
  const { convertToFlash } = await import("../../flash/convert.js");
  const { defaultBackend } = await import("../../backends/default.js");
  const line = new ProgressLine(ctx.stderr);
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  let report;
  try {
    report = await convertToFlash(defaultBackend(), inPath, outPath, {
      ...(values.groupSize !== undefined ? { groupSize: values.groupSize } : {}),
      ...(values.columnType !== undefined ? { columnType: ggmlTypeOf(values.columnType) } : {}),
      signal: controller.signal,
      onProgress: (f) => line.update(`converting ${basename(inPath)}`, f),
    });
    line.done(`converted ${basename(inPath)} -> ${outPath}`);
  } catch (e) {
    line.done();
    throw e;
  } finally {
    off();
  }
  if (values.json === true) {
    ctx.stdout.write(`${jsonText(convertRecord(report))}\n`);
    return 0;
  }
  const rows = report.sites.map((s) => [
    s.site, String(s.nIn), s.tensors.join(","), s.sourceTypes.join(","), s.layout === "split" ? "split" : s.columnType,
    s.quantError.toExponential(2), mib(s.extentBytes), mib(s.scaleBytes),
  ]);
  ctx.stdout.write(formatTable(["site", "n_in", "tensors", "source", "column", "quant_err", "MiB", "scales MiB"], rows));
  ctx.stdout.write(
    `${report.nLayer} layers in ${report.groups} groups of ${report.groupSize}; resident ${mib(report.residentBytes)} MiB ` +
      `+ scale planes ${mib(report.scaleBytes)} MiB, extents ${mib(report.extentBytes)} MiB, file ${mib(report.fileBytes)} MiB ` +
      `(version ${report.version}); ${report.seconds.toFixed(1)} s\n` +
      `${report.outPath}\n`,
  );
  return 0;
}

// The --json record: the converter's report in the CLI's snake_case keys.
function convertRecord(r: ConvertReport): Record<string, unknown> {
  return {
    in_path: r.inPath, out_path: r.outPath, group_size: r.groupSize, groups: r.groups, n_layer: r.nLayer, version: r.version,
    sites: r.sites.map((s) => ({
      site: s.site, n_in: s.nIn, tensors: s.tensors, n_out: s.nOut, source_types: s.sourceTypes, layout: s.layout,
      column_type: s.columnType, quant_error: s.quantError, extent_bytes: s.extentBytes, scale_bytes: s.scaleBytes,
    })),
    resident_bytes: r.residentBytes, scale_bytes: r.scaleBytes, extent_bytes: r.extentBytes,
    ...(r.experts ? { experts: { bytes: r.experts.bytes, layout: r.experts.layout, quant_error: r.experts.quantError } } : {}),
    file_bytes: r.fileBytes,
    seconds: r.seconds, rss_peak_bytes: r.peakRssBytes,
  };
}

// "q8_0" -> GgmlType.Q8_0 (the parser has already checked the name).
export function ggmlTypeOf(name: string): number {
  return GgmlType[name.toUpperCase() as keyof typeof GgmlType];
}
