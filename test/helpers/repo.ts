// Where the repository is, for tests that run its files (bin/activeflow.js, scripts/demo.mjs)
// or read its data: the nearest directory above this file whose package.json is activeflow's,
// so it works from test/helpers (tsx) and dist/test/helpers (npm test).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "activeflow") return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`package.json of activeflow not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const REPO_ROOT = repoRoot();
export const BIN = join(REPO_ROOT, "bin", "activeflow.js");
