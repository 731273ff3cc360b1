/**
 * Creates the runner's dirs (mode 0700) and checks they can be written, with errors that name the
 * dir and the cause (a sandbox refusal, a read-only filesystem, a missing parent...).
 *
 * @module
 */
import { dirname } from "node:path";
import type { RunConfig } from "./config.ts";

/** A dir the runner needs could not be created or written. */
export class DirError extends Error {
  override name = "DirError";
}

function describe(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    return "the sandbox does not grant write access there (see docs/sandbox.md)";
  }
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Makes `dir` (and parents) with mode 0700 and proves it writable; throws {@linkcode DirError}. */
export function ensureWritableDir(dir: string, role: string): void {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const probe = `${dir}/.write-probe-${Deno.pid}`;
    Deno.writeTextFileSync(probe, "", { mode: 0o600 });
    Deno.removeSync(probe);
  } catch (error) {
    throw new DirError(`${role} ${dir} is not writable: ${describe(error)}`);
  }
}

/** Prepares the log, state, outbox and info-file dirs of a run. */
export function prepareDirs(config: RunConfig): void {
  ensureWritableDir(config.logDir, "log dir");
  ensureWritableDir(config.stateDir, "state dir");
  ensureWritableDir(config.outboxDir, "outbox dir");
  ensureWritableDir(dirname(config.infoFile), "info file dir");
}
