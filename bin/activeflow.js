#!/usr/bin/env node
import { setFlagsFromString } from "node:v8";
// The young generation stays at its initial size (two 1 MiB semi-spaces) instead of growing to
// 2 x 16 MiB while the vocabulary is built: that growth is memory of this process a DRAM budget
// cannot hold (docs/MEMORY.md). Set before anything is allocated; V8 reads it when it would grow.
setFlagsFromString("--semi-space-growth-factor=1");
const { main } = await import("../dist/src/cli/main.js");
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
