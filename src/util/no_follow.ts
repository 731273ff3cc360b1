/**
 * Files opened without following a symlink: a symlink where one of the runner's files should be
 * is an error, never a way to make the runner write, append to or chmod another file.
 *
 * Deno has no `O_NOFOLLOW`, so each helper checks with `lstat` before it acts and, for an open
 * file, checks after opening that the path still names the very file that was opened (same
 * device and inode): a link swapped in between is caught too.
 *
 * @module
 */

/** A symlink (or another non-file) sits where the runner expected its own file. */
export class SymlinkError extends Error {
  override name = "SymlinkError";
}

function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Throws {@linkcode SymlinkError} when `path` is a symlink or not a regular file; a missing path
 * is fine (it will be created).
 */
export function checkNotSymlink(path: string): void {
  const info = lstatOrUndefined(path);
  if (info === undefined) return;
  if (info.isSymlink) {
    throw new SymlinkError(`${path} is a symlink: refusing to follow it (remove it)`);
  }
  if (!info.isFile) throw new SymlinkError(`${path} is not a regular file`);
}

/**
 * Opens `path` like `Deno.openSync`, refusing a symlink at `path`; a file it creates gets
 * `options.mode`. The caller owns (and closes) the file.
 */
export function openNoFollow(path: string, options: Deno.OpenOptions): Deno.FsFile {
  checkNotSymlink(path);
  const file = Deno.openSync(path, options);
  try {
    const opened = file.statSync();
    const now = Deno.lstatSync(path);
    if (now.isSymlink || now.ino !== opened.ino || now.dev !== opened.dev) {
      throw new SymlinkError(`${path} was replaced while it was opened: refusing it`);
    }
    return file;
  } catch (error) {
    file.close();
    throw error;
  }
}

/** `chmod` that refuses to act through a symlink (Deno has no `fchmod`: checked just before). */
export function chmodNoFollow(path: string, mode: number): void {
  const info = Deno.lstatSync(path);
  if (info.isSymlink) {
    throw new SymlinkError(`${path} is a symlink: refusing to chmod through it (remove it)`);
  }
  Deno.chmodSync(path, mode);
}

/**
 * Writes `data` to `path` atomically (a new temporary file beside it, then a rename) with
 * `mode`, refusing a symlink at `path`. The rename replaces a name, never a link's target.
 */
export function writeFileNoFollow(path: string, data: string | Uint8Array, mode = 0o600): void {
  checkNotSymlink(path);
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  // createNew is O_EXCL: it never opens an existing file or follows a planted link.
  const file = Deno.openSync(tmp, { write: true, createNew: true, mode });
  try {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
  } catch (error) {
    file.close();
    Deno.removeSync(tmp);
    throw error;
  }
  file.close();
  Deno.renameSync(tmp, path);
}
