// Flash bandwidth model: random reads of one block size at one queue depth, through our
// io_uring and pread backends and through fio's io_uring engine, on a 2 GiB file of random
// bytes, the page cache dropped before every run. Prints MB/s per point and our/fio ratios;
// saves raw JSON to bench/results/io-<date>.json (the pipeline's cost model reads it).
// This virtio disk's speed swings run to run, so every point runs --rounds times with the
// engine order rotated each round, and the table shows medians.
// Run: `npm run build && node dist/bench/io.js` as root (drop_caches); options below.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { homedir, loadavg, release } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadAddon } from "../src/backends/native/binding.js";
import { machineInfo } from "./lib/machine.js";
import { ensureRandomFile, measureReader } from "./lib/readerBandwidth.js";
import { repoRoot } from "./lib/paths.js";
import { median, table } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    sizes: { type: "string", default: "4K,16K,64K,256K,1M" },
    qds: { type: "string", default: "1,8,32" },
    engines: { type: "string", default: "io_uring,pread,fio" },
    file: { type: "string", default: join(homedir(), ".cache", "activeflow", "bench", "io-2g.bin") },
    "file-gib": { type: "string", default: "2" },
    out: { type: "string" },
  },
});

type Engine = "io_uring" | "pread" | "fio";
interface Point {
  engine: Engine;
  blockBytes: number;
  queueDepth: number;
  seconds: number;
  bytes: number;
  reads: number;
  mbPerSecond: number; // 1e6 bytes per second
  iops: number;
  meanLatencyUs?: number; // fio only: mean completion latency
  // Process CPU seconds (user + system) per GB read; ours only. The decode threads share
  // these 2 cores, so this is the other half of the io_uring vs pread choice.
  cpuSecondsPerGb?: number;
  cachesDropped: boolean;
  round: number;
  // 1-minute load average before the run: other work on this 2-core machine skews points.
  loadAverage: number;
}

const log = (s: string) => process.stderr.write(s + "\n");
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const engines = args.engines.split(",") as Engine[];
const qds = args.qds.split(",").map(Number);
const sizes = args.sizes.split(",").map(parseSize);
const fileBytes = Number(args["file-gib"]) * 2 ** 30;
const addon = loadAddon();

function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
  if (!m) throw new Error(`--sizes: "${s}" is not a size like 4K or 1M`);
  return Number(m[1]) * { "": 1, K: 1024, M: 2 ** 20, G: 2 ** 30 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G"];
}

const label = (b: number) => (b >= 2 ** 20 ? `${b / 2 ** 20}M` : `${b / 1024}K`);

function dropCaches(): boolean {
  try {
    execFileSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

async function ours(engine: "io_uring" | "pread", bs: number, qd: number): Promise<Omit<Point, "cachesDropped" | "round" | "loadAverage">> {
  return measureReader(addon, args.file, engine, bs, qd, seconds);
}

interface FioJson {
  jobs: { read: { io_bytes: number; bw_bytes: number; iops: number; total_ios: number; runtime: number; clat_ns?: { mean: number } } }[];
}

function fio(bs: number, qd: number): Omit<Point, "cachesDropped" | "round" | "loadAverage"> {
  const out = execFileSync(
    "fio",
    [
      "--name=x", `--filename=${args.file}`, "--direct=1", "--rw=randread", `--bs=${bs}`, `--iodepth=${qd}`,
      "--ioengine=io_uring", `--runtime=${seconds}`, "--time_based", "--output-format=json",
    ],
    { encoding: "utf8", maxBuffer: 64 << 20 },
  );
  const json = JSON.parse(out.slice(out.indexOf("{"))) as FioJson;
  const r = json.jobs[0]!.read;
  const elapsed = r.runtime / 1000;
  return {
    engine: "fio", blockBytes: bs, queueDepth: qd, seconds: elapsed, bytes: r.io_bytes, reads: r.total_ios,
    mbPerSecond: r.bw_bytes / 1e6, iops: r.iops, ...(r.clat_ns ? { meanLatencyUs: r.clat_ns.mean / 1000 } : {}),
  };
}

async function main(): Promise<void> {
  ensureRandomFile(args.file, fileBytes, log);
  if (engines.includes("fio")) {
    try {
      execFileSync("fio", ["--version"]);
    } catch {
      throw new Error("fio not found: install it with `apt-get install -y fio` or pass --engines io_uring,pread");
    }
  }
  const points: Point[] = [];
  let dropped = true;
  for (let round = 0; round < rounds; round++) {
    const order = engines.map((_, i) => engines[(i + round) % engines.length]!);
    for (const bs of sizes) {
      for (const qd of qds) {
        for (const engine of order) {
          const cachesDropped = dropCaches();
          const loadAverage = loadavg()[0]!;
          dropped &&= cachesDropped;
          const p = engine === "fio" ? fio(bs, qd) : await ours(engine, bs, qd);
          points.push({ ...p, cachesDropped, round, loadAverage });
          log(`round ${round} ${engine.padEnd(8)} bs ${label(bs).padStart(4)} qd ${String(qd).padStart(2)}: ${p.mbPerSecond.toFixed(1)} MB/s, ${p.iops.toFixed(0)} IOPS`);
        }
      }
    }
  }
  if (!dropped) log("warning: could not drop the page cache (not root?); direct I/O bypasses it anyway");

  // Median over rounds of each (engine, bs, qd).
  const summary = (e: Engine, bs: number, qd: number) => {
    const ps = points.filter((p) => p.engine === e && p.blockBytes === bs && p.queueDepth === qd);
    if (ps.length === 0) return undefined;
    const lat = ps.flatMap((p) => (p.meanLatencyUs === undefined ? [] : [p.meanLatencyUs]));
    const cpu = ps.flatMap((p) => (p.cpuSecondsPerGb === undefined ? [] : [p.cpuSecondsPerGb]));
    return {
      mbPerSecond: median(ps.map((p) => p.mbPerSecond)),
      iops: median(ps.map((p) => p.iops)),
      meanLatencyUs: lat.length ? median(lat) : undefined,
      cpuSecondsPerGb: cpu.length ? median(cpu) : undefined,
    };
  };
  type Summary = ReturnType<typeof summary>;
  const mb = (p: Summary) => (p ? p.mbPerSecond.toFixed(1) : "-");
  const cpu = (p: Summary) => p?.cpuSecondsPerGb?.toFixed(2) ?? "-";
  const ratio = (a: Summary, b: Summary) => (a && b ? (a.mbPerSecond / b.mbPerSecond).toFixed(2) : "-");
  const medians: { blockBytes: number; queueDepth: number; engine: Engine; mbPerSecond: number; iops: number; cpuSecondsPerGb?: number }[] = [];
  const rows = sizes.flatMap((bs) =>
    qds.map((qd) => {
      const u = summary("io_uring", bs, qd), p = summary("pread", bs, qd), f = summary("fio", bs, qd);
      for (const [engine, s] of [["io_uring", u], ["pread", p], ["fio", f]] as const) {
        if (s) {
          medians.push({
            blockBytes: bs, queueDepth: qd, engine, mbPerSecond: s.mbPerSecond, iops: s.iops,
            ...(s.cpuSecondsPerGb === undefined ? {} : { cpuSecondsPerGb: s.cpuSecondsPerGb }),
          });
        }
      }
      return [
        label(bs), String(qd), mb(u), mb(p), mb(f), ratio(u, f), ratio(p, f), ratio(u, p), cpu(u), cpu(p),
        f ? f.iops.toFixed(0) : "-", f?.meanLatencyUs?.toFixed(0) ?? "-",
      ];
    }),
  );
  console.log(`median of ${rounds} rounds of ${seconds} s, MB/s = 1e6 bytes/s`);
  console.log(
    table(
      ["bs", "qd", "io_uring MB/s", "pread MB/s", "fio MB/s", "uring/fio", "pread/fio", "uring/pread", "uring cpu s/GB", "pread cpu s/GB", "fio IOPS", "fio lat us"],
      rows,
    ),
  );

  const date = new Date().toISOString().slice(0, 10);
  const out = args.out ?? join(repoRoot(), "bench", "results", `io-${date}.json`);
  mkdirSync(join(out, ".."), { recursive: true });
  const result = {
    bench: "io",
    machine: { ...machineInfo(), kernel: release() },
    file: args.file,
    fileBytes,
    secondsPerPoint: seconds,
    rounds,
    medians,
    defaultBackend: addon.ioDefaultBackend(),
    units: { mbPerSecond: "1e6 bytes/s", blockBytes: "bytes" },
    points,
  };
  writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  log(`saved ${out}`);
}

main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
