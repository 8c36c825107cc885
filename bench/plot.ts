// PNG plots of a budget result file through matplotlib, in a venv the first call creates
// under the activeflow cache (PyPI is the one package source these machines reach).
// Usage: node dist/bench/plot.js bench/results/budget-<date>.json
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheRoot } from "../src/fetch/cache.js";
import { repoRoot } from "./lib/paths.js";

export function venvPython(log: (s: string) => void): string {
  const venv = join(cacheRoot(), "bench-venv");
  const py = join(venv, "bin", "python");
  const hasMpl = () => {
    try {
      execFileSync(py, ["-c", "import matplotlib"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (existsSync(py) && hasMpl()) return py;
  log(`creating ${venv} with matplotlib (once) ...`);
  if (!existsSync(py)) execFileSync("python3", ["-m", "venv", venv], { stdio: "inherit" });
  execFileSync(py, ["-m", "pip", "install", "-q", "matplotlib"], { stdio: "inherit" });
  return py;
}

// Runs bench/<script> <json> <png> in the matplotlib venv; returns the PNG path it prints.
export async function plotWith(script: string, jsonPath: string, pngPath: string, log: (s: string) => void = () => {}): Promise<string> {
  const py = venvPython(log);
  return execFileSync(py, [join(repoRoot(), "bench", script), jsonPath, pngPath], { encoding: "utf8" }).trim();
}

// Writes <json without .json>-<model>.png for each model and returns their paths.
export async function plotBudget(jsonPath: string, log: (s: string) => void = () => {}): Promise<string[]> {
  const py = venvPython(log);
  const script = join(repoRoot(), "bench", "plot_budget.py");
  const out = execFileSync(py, [script, jsonPath, jsonPath.replace(/\.json$/, "")], { encoding: "utf8" });
  return out.trim().split("\n").filter(Boolean);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: plot.js <budget results .json>\n");
    process.exit(1);
  }
  plotBudget(file, (s) => process.stderr.write(s + "\n")).then(
    (pngs) => process.stdout.write(pngs.join("\n") + "\n"),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
