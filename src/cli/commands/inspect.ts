// `activeflow inspect <model>`: what a model file holds. Metadata (long arrays summarised),
// tensors with types and shapes, and for a flash-layout file its layout (group size, column
// format per site, extents); the calibration table's levels from either kind of file.
import { jsonText } from "../output.js";
import type { GgufValue } from "../../gguf/types.js";
import type { OptionValues } from "../args.js";
import type { CliContext } from "./context.js";
import { resolveModelPath } from "./model.js";
import { formatTable, mib } from "./table.js";

// Arrays longer than this print as a summary with their first items.
const ARRAY_HEAD = 8;
// Strings longer than this are cut in the text listing (the JSON keeps them whole).
const TEXT_CUT = 120;

type Summary = string | number | boolean | null | { type: string; length: number; head: Summary[] } | Summary[];

function elementType(v: GgufValue[] | ArrayLike<number>): string {
  if (!Array.isArray(v)) return (v as object).constructor.name.replace(/Array$/, "").toLowerCase() || "number";
  const first = v[0];
  return first === undefined ? "empty" : Array.isArray(first) ? "array" : typeof first;
}

function summarise(v: GgufValue): Summary {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const arr = Array.from(v as ArrayLike<GgufValue>);
    if (arr.length <= ARRAY_HEAD) return arr.map(summarise);
    return { type: elementType(v as GgufValue[]), length: arr.length, head: arr.slice(0, ARRAY_HEAD).map(summarise) };
  }
  return String(v);
}

function textOf(s: Summary): string {
  if (s !== null && typeof s === "object" && !Array.isArray(s)) {
    return `[${s.length} x ${s.type}: ${s.head.map(textOf).join(", ")}, ...]`;
  }
  const t = JSON.stringify(s);
  return t.length > TEXT_CUT ? `${t.slice(0, TEXT_CUT)}... (${t.length} chars)` : t;
}

export async function inspectCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
  const path = await resolveModelPath(model, ctx);
  const { readGguf } = await import("../../gguf/reader.js");
  const { typeName } = await import("../../gguf/types.js");
  const { KEY } = await import("../../flash/format.js");
  const { loadCalibration } = await import("../../sparsity/store.js");
  const { selectionOf } = await import("../../sparsity/thresholds.js");
  const file = await readGguf(path);
  const metadata = Object.fromEntries([...file.metadata].map(([k, v]) => [k, summarise(v)]));
  const tensors = file.tensors.map((t) => ({ name: t.name, type: typeName(t.type).toLowerCase(), shape: [...t.dims], bytes: t.bytes }));
  let flash: Record<string, unknown> | undefined;
  if (file.metadata.has(KEY.version)) {
    const { openFlashModel } = await import("../../flash/open.js");
    const f = await openFlashModel(path);
    flash = {
      version: f.version,
      group_size: f.groupSize,
      groups: f.groups,
      n_layer: f.nLayer,
      sites: f.sites.map((s) => ({
        site: s.site, layout: s.layout ?? "columns", column_type: typeName(s.columnType).toLowerCase(), n_in: s.nIn,
        tensors: [...s.tensors], n_out: [...s.nOut], quant_error: f.quantError.get(s.site) ?? 0,
      })),
      extents: f.extents.map((e) => ({
        name: e.name, group: e.group, site: e.site, first_layer: e.firstLayer, layers: e.layers, layout: e.layout,
        column_type: typeName(e.columnType).toLowerCase(), n_in: e.nIn, record_bytes: e.recordBytes, bytes: e.bytes, offset: e.offset,
      })),
      resident_bytes: f.resident.reduce((n, t) => n + t.bytes, 0),
      extent_bytes: f.extents.reduce((n, e) => n + e.bytes, 0),
    };
  }
  const table = await loadCalibration(path);
  const calibration = table
    ? { levels: table.levels, method: table.method ?? "uniform", selection: selectionOf(table), source: table.source, tokens: table.calibrationTokens, n_layer: table.nLayer }
    : null;
  const record = { path, file_bytes: file.fileSize, gguf_version: file.version, metadata, tensors, flash: flash ?? null, calibration };
  if (values.json === true) {
    ctx.stdout.write(`${jsonText(record)}\n`);
    return 0;
  }
  const out: string[] = [`${path}: GGUF v${file.version}, ${mib(file.fileSize)} MiB, ${file.metadata.size} metadata keys, ${file.tensors.length} tensors`, "", "metadata:"];
  for (const [k, v] of Object.entries(metadata)) out.push(`  ${k} = ${textOf(v)}`);
  out.push("", "tensors (shape in GGML order: the contiguous dimension first):");
  out.push(formatTable(["name", "type", "shape", "MiB"], tensors.map((t) => [t.name, t.type, t.shape.join(" x "), mib(t.bytes)])).trimEnd().replace(/^/gm, "  "));
  if (flash) {
    const f = flash as { version: number; group_size: number; groups: number; sites: { site: string; layout: string; column_type: string; n_in: number; tensors: string[]; quant_error: number }[]; extents: { name: string; site: string; first_layer: number; layers: number; record_bytes: number; bytes: number; offset: number }[]; extent_bytes: number; resident_bytes: number };
    out.push("", `flash layout: version ${f.version}, group size ${f.group_size} (${f.groups} groups), ${mib(f.extent_bytes)} MiB of extents, ${mib(f.resident_bytes)} MiB resident`);
    out.push(formatTable(["site", "layout", "column type", "n_in", "tensors", "quant error"], f.sites.map((s) => [s.site, s.layout, s.column_type, String(s.n_in), s.tensors.join(","), s.quant_error.toPrecision(3)])).trimEnd().replace(/^/gm, "  "));
    out.push("  extents:");
    out.push(formatTable(["name", "site", "layers", "record bytes", "MiB", "offset"], f.extents.map((e) => [e.name, e.site, e.layers === 1 ? String(e.first_layer) : `${e.first_layer}-${e.first_layer + e.layers - 1}`, String(e.record_bytes), mib(e.bytes), String(e.offset)])).trimEnd().replace(/^/gm, "  "));
  }
  out.push("", calibration
    ? `calibration: ${calibration.method} on ${calibration.tokens} tokens (${calibration.source}), ${calibration.selection} selection; levels ${calibration.levels.join(", ")}`
    : "calibration: none (`activeflow calibrate` makes one)");
  ctx.stdout.write(`${out.join("\n")}\n`);
  return 0;
}
