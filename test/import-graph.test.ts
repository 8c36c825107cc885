// Issue 11 item 4: the core is free of platform code. Reads the import statements of every
// src/**/*.ts and checks the layering: only the native backend (and the one factory that
// picks it as the default) loads the addon; engine/ imports no backend implementation;
// sparsity/ does not import engine/ (engine/ imports sparsity/, and a cycle would tie them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { REPO_ROOT } from "./helpers/repo.js";

const SRC = join(REPO_ROOT, "src");
// The one place outside the native backend allowed to name it: the default backend's factory.
const FACTORY = "src/backends/default.ts";

// Module specifiers of static imports and re-exports (one line or many), side-effect imports
// and dynamic import() with a string literal. Comments are dropped first, so a comment that
// mentions a path is not an edge.
function importSpecifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']/g,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    return d.isDirectory() ? tsFiles(p) : d.name.endsWith(".ts") && !d.name.endsWith(".d.ts") ? [p] : [];
  });
}

// Repository-relative, "/"-separated: src/engine/Engine.ts.
const repoPath = (abs: string): string => relative(REPO_ROOT, abs).split(sep).join("/");

// Every file under src/ and the src/ files it imports (relative specifiers, resolved; .js -> .ts).
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of tsFiles(SRC)) {
    const targets = importSpecifiers(readFileSync(file, "utf8"))
      .filter((s) => s.startsWith("."))
      .map((s) => repoPath(resolve(dirname(file), s)).replace(/\.js$/, ".ts"));
    graph.set(repoPath(file), targets);
  }
  return graph;
}

function violations(graph: Map<string, string[]>, from: (f: string) => boolean, to: (t: string) => boolean): string[] {
  const out: string[] = [];
  for (const [f, targets] of graph) if (from(f)) for (const t of targets) if (to(t)) out.push(`${f} -> ${t}`);
  return out;
}

test("the import parser finds one-line, multi-line, re-export, side-effect and dynamic imports, not comments", () => {
  const text = [
    'import { a } from "./a.js";',
    "import type { B } from '../b.js';",
    "import {\n  c,\n  d,\n} from \"./cd.js\";",
    'export { e } from "./e.js";',
    'export * from "./star.js";',
    'import "./side.js";',
    'const m = await import("../dyn.js");',
    '// import { no } from "./comment.js";',
    '/* import { no } from "./block.js"; */',
    'const s = "not an import";',
  ].join("\n");
  assert.deepEqual(importSpecifiers(text).sort(), ["../b.js", "../dyn.js", "./a.js", "./cd.js", "./e.js", "./side.js", "./star.js"]);
});

test("import graph: the graph is read (known edges are present)", () => {
  const graph = importGraph();
  assert.ok(graph.size > 50, `only ${graph.size} files under src/`);
  assert.ok(graph.get("src/index.ts")?.includes("src/engine/Engine.ts"), "src/index.ts -> src/engine/Engine.ts not found");
  assert.ok(graph.get("src/backends/native/NativeBackend.ts")?.includes("src/backends/native/binding.ts"));
  // Dynamic imports count: the CLI loads the engine lazily.
  assert.ok(graph.get("src/cli/commands/model.ts")?.includes("src/engine/Engine.ts"));
});

test("import graph: only the native backend and the default factory import the native backend", () => {
  const graph = importGraph();
  const bad = violations(graph, (f) => !f.startsWith("src/backends/native/") && f !== FACTORY, (t) => t.startsWith("src/backends/native/"));
  assert.deepEqual(bad, [], `files outside the native backend that import it:\n${bad.join("\n")}`);
  // The exception above is for a file that exists and does pick the native backend.
  assert.ok(graph.get(FACTORY)?.includes("src/backends/native/NativeBackend.ts"), `${FACTORY} does not import the native backend`);
});

test("import graph: engine/ imports no backend implementation", () => {
  const bad = violations(importGraph(), (f) => f.startsWith("src/engine/"), (t) => t.startsWith("src/backends/"));
  assert.deepEqual(bad, [], `engine/ files that import src/backends/:\n${bad.join("\n")}`);
});

test("import graph: sparsity/ does not import engine/", () => {
  const bad = violations(importGraph(), (f) => f.startsWith("src/sparsity/"), (t) => t.startsWith("src/engine/"));
  assert.deepEqual(bad, [], `sparsity/ files that import engine/:\n${bad.join("\n")}`);
});
