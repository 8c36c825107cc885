// Starts `activeflow serve` as a child process (as a user would) and waits for the URL it
// prints once it listens; `ready` waits for GET /health to answer 200.
import { spawn, type ChildProcess } from "node:child_process";
import { BIN } from "./repo.js";

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  // Everything the server wrote on stderr so far.
  stderr: () => string;
  // With --json: the object printed on stdout.
  printed: Record<string, unknown> | undefined;
  // Exit code (or the signal's name) once the process has ended.
  exited: Promise<number | string>;
  ready: () => Promise<void>;
}

export async function startServe(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, "serve", ...args, "--host", "127.0.0.1", "--port", "0"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  let printed: Record<string, unknown> | undefined;
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not print its URL in ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      // The URL line, or with --json one JSON object holding it.
      const line = /^(.*)\n/.exec(out)?.[1];
      if (line === undefined) return;
      clearTimeout(timer);
      if (line.startsWith("{")) {
        printed = JSON.parse(line) as Record<string, unknown>;
        resolve(String(printed.url));
      } else if (/^http:\/\/\S+$/.test(line)) {
        resolve(line);
      } else {
        reject(new Error(`serve printed "${line}" instead of its URL`));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}) before listening; stderr: ${err}`));
    });
  });
  const ready = async () => {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (child.exitCode !== null) throw new Error(`serve exited (${child.exitCode}) before it was healthy; stderr: ${err}`);
      const r = await fetch(`${url}/health`).catch(() => undefined);
      if (r?.status === 200) return;
      await new Promise((f) => setTimeout(f, 50));
    }
    throw new Error(`serve at ${url} not healthy in ${timeoutMs} ms; stderr: ${err}`);
  };
  return { url, child, stderr: () => err, printed, exited, ready };
}
