/**
 * Creates the runner's dirs (mode 0700) and checks them: a dir that is group- or world-writable
 * or owned by another user is refused ({@linkcode UnsafeDirError}, exit 2), and each must be
 * writable, with errors that name the dir and the cause (a sandbox refusal, a read-only
 * filesystem, a missing parent...).
 *
 * @module
 */
import { dirname } from "../util/mod.ts";
import type { RunConfig } from "./config.ts";

/** A dir the runner needs could not be created or written. */
export class DirError extends Error {
  override name = "DirError";
}

/** A dir that others could write to: refused (exit 2), since what it holds could be planted. */
export class UnsafeDirError extends DirError {
  override name = "UnsafeDirError";
}

function describe(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    return "the sandbox does not grant write access there (see docs/sandbox.md)";
  }
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Error) return error.message;
  return String(error);
}

function currentUid(): number | undefined {
  try {
    return Deno.uid() ?? undefined;
  } catch {
    return undefined; // Not granted (a sandboxed caller): the launcher checked already.
  }
}

/**
 * Throws {@linkcode UnsafeDirError} when `dir` is group- or world-writable or owned by another
 * user; the error says how to fix it.
 */
export function checkDirSafe(dir: string, role: string, info: Deno.FileInfo): void {
  if (!info.isDirectory) throw new UnsafeDirError(`${role} ${dir} is not a directory`);
  const uid = currentUid();
  if (uid !== undefined && info.uid !== null && info.uid !== uid) {
    throw new UnsafeDirError(
      `${role} ${dir} is owned by another user (uid ${info.uid}, this is uid ${uid}): ` +
        "use a dir of your own",
    );
  }
  const mode = (info.mode ?? 0) & 0o777;
  if ((mode & 0o022) !== 0) {
    throw new UnsafeDirError(
      `${role} ${dir} is group- or world-writable (mode ${mode.toString(8).padStart(4, "0")}): ` +
        `chmod 700 it, or use another dir`,
    );
  }
}

/**
 * Makes `dir` (and parents) with mode 0700, checks it is safe ({@linkcode checkDirSafe}) and
 * proves it writable; throws {@linkcode DirError} or {@linkcode UnsafeDirError}.
 */
export function ensureWritableDir(dir: string, role: string): void {
  let info: Deno.FileInfo;
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    info = Deno.statSync(dir);
  } catch (error) {
    throw new DirError(`${role} ${dir} is not writable: ${describe(error)}`);
  }
  checkDirSafe(dir, role, info);
  try {
    const probe = `${dir}/.write-probe-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    // createNew (O_EXCL) never follows a planted link.
    Deno.openSync(probe, { write: true, createNew: true, mode: 0o600 }).close();
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
