#!/usr/bin/env node
// deno-lint-ignore-file no-console
// A minimal orchestrator for one runner (see docs/deploy.md): spawn it, wait until GET /ready
// answers 200 on the port from its runner-info file, then stop it with SIGTERM when this
// launcher gets SIGTERM or SIGINT (or at once with LAUNCH_ONCE=1), and exit with its exit code.
//   node launch.mjs INFO_FILE COMMAND [ARGS...]
// e.g. node launch.mjs ~/.agent-relay/state/echo/runner-info.json \
//        deno task start run --agent-id echo --provider command -- ./examples/echo-agent
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { constants } from "node:os";

const [infoFile, command, ...args] = process.argv.slice(2);
if (!infoFile || !command) {
  console.error("usage: node launch.mjs INFO_FILE COMMAND [ARGS...]");
  process.exit(2);
}
const timeoutMs = Number(process.env.LAUNCH_READY_TIMEOUT_S ?? "60") * 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const spawnedAt = Date.now();
const child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit"] });
let exitCode;
const exited = new Promise((resolve) =>
  child.on("exit", (code, signal) => resolve(exitCode = code ?? 128 + constants.signals[signal]))
);
const stop = () => child.exitCode === null && child.kill("SIGTERM");
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

/** The runner-info file of this start (not a stale one): its startedAt is after the spawn. */
async function readInfo() {
  try {
    const info = JSON.parse(await readFile(infoFile, "utf8"));
    return Date.parse(info.startedAt) >= spawnedAt - 1000 ? info : undefined;
  } catch {
    return undefined;
  }
}

async function waitReady() {
  let lastReason;
  while (Date.now() - spawnedAt < timeoutMs && exitCode === undefined) {
    const info = await readInfo();
    if (info) {
      try {
        const res = await fetch(`http://127.0.0.1:${info.controlPort}/ready`);
        const body = await res.json();
        if (res.status === 200) return info;
        if (body.reason !== lastReason) console.log(`not ready yet: ${lastReason = body.reason}`);
      } catch {
        // The control server is not listening yet.
      }
    }
    await sleep(100);
  }
  return undefined;
}

const info = await waitReady();
if (info) {
  console.log(`ready: agent ${info.agentId}, runner pid ${info.pid}, port ${info.controlPort}`);
  if (process.env.LAUNCH_ONCE === "1") stop();
} else if (exitCode === undefined) {
  console.log(`not ready within ${timeoutMs / 1000} s: stopping it`);
  stop();
}
const code = await exited;
console.log(`runner exited with code ${code}`);
process.exit(info ? code : code || 1);
