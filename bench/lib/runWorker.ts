// Spawns bench/lib/worker in a fresh Node process and returns its one JSON result.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RESULT_MARKER, type WorkerRequest, type WorkerResult } from "./types.js";

// dist/bench/lib/worker.js after `npm run build`; bench/lib/worker.ts under tsx.
function workerCommand(): string[] {
  const js = fileURLToPath(new URL("./worker.js", import.meta.url));
  if (existsSync(js)) return [js];
  const ts = fileURLToPath(new URL("./worker.ts", import.meta.url));
  return ["--import", "tsx", ts];
}

export async function runWorker(req: WorkerRequest, timeoutSeconds: number): Promise<WorkerResult> {
  const child = spawn(process.execPath, [...workerCommand(), JSON.stringify(req)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutSeconds * 1000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on("close", (c, s) => resolve([c, s])),
  );
  clearTimeout(timer);
  const line = stdout.split("\n").find((l) => l.startsWith(RESULT_MARKER));
  if (code !== 0 || line === undefined) {
    const why = timedOut ? `timed out after ${timeoutSeconds} s` : signal !== null ? `died with ${signal}` : `exit code ${code}`;
    throw new Error(`${req.engine} worker (${req.threads} threads, ${req.modelPath}) failed: ${why}\n${stderr.trim().slice(-2000)}`);
  }
  return JSON.parse(line.slice(RESULT_MARKER.length)) as WorkerResult;
}
