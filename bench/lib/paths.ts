// The repository root (package.json named "activeflow"), from bench/ or dist/bench/.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "activeflow") return dir;
    dir = dirname(dir);
  }
  throw new Error(`package.json of activeflow not found above ${fileURLToPath(import.meta.url)}`);
}
