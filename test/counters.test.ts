// The flash counters are declared once (native/model/flash_counters.h); the TypeScript type is
// generated from that table and must be current, and the addon must report every counter.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { join, dirname } from "node:path";
import { FLASH_COUNTER_NAMES } from "../src/backend/flashCounters.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

test("src/backend/flashCounters.ts matches native/model/flash_counters.h", () => {
  execFileSync(process.execPath, [join(root, "scripts", "gen-counters.mjs"), "--check"], { stdio: "pipe" });
});

test("the counter list holds the counters the engine's stats read", () => {
  for (const k of ["bytesRead", "deviceReads", "activeBytes", "demandIoSeconds", "fillBytesRead", "columnComputeSeconds"]) {
    assert.ok((FLASH_COUNTER_NAMES as readonly string[]).includes(k), k);
  }
});
