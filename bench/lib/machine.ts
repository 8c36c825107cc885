// What the numbers were measured on, saved beside them.
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg, totalmem } from "node:os";

export interface MachineInfo {
  cpuModel: string;
  nproc: number;
  // SIMD-relevant /proc/cpuinfo flags present on this CPU.
  cpuFlags: string[];
  totalMemoryBytes: number;
  node: string;
  platform: string;
  date: string;
  nodeLlamaCppVersion: string | undefined;
  // 1/5/15-minute load averages at the start: above ~0.5 on 2 vCPUs the numbers are noisy.
  loadAverage: number[];
}

const FLAGS_OF_INTEREST = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8"];

function cpuinfo(): string {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return "";
  }
}

function packageVersion(name: string): string | undefined {
  try {
    const url = new URL(`../../../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(url, "utf8")) as { version?: string }).version;
  } catch {
    try {
      const url = new URL(`../../node_modules/${name}/package.json`, import.meta.url);
      return (JSON.parse(readFileSync(url, "utf8")) as { version?: string }).version;
    } catch {
      return undefined;
    }
  }
}

export function machineInfo(): MachineInfo {
  const info = cpuinfo();
  const model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1] ?? "unknown";
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? "").split(/\s+/));
  return {
    cpuModel: model.trim(),
    nproc: availableParallelism(),
    cpuFlags: FLAGS_OF_INTEREST.filter((f) => flags.has(f)),
    totalMemoryBytes: totalmem(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
    nodeLlamaCppVersion: packageVersion("node-llama-cpp"),
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
