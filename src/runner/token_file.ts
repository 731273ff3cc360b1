/**
 * The relay token from a file (`--token-file`): read at start and again when the relay refuses
 * the token, so an orchestrator can rotate it without restarting the runner, and the token sits
 * in no process environment. The file must be a regular file (not a link) that only its owner
 * can read or write.
 *
 * @module
 */

/** A token file that cannot be used. */
export class TokenFileError extends Error {
  override name = "TokenFileError";
}

/** Reads the token: the file's first line, trimmed. Throws {@linkcode TokenFileError}. */
export function readTokenFile(path: string): string {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "it does not exist" : String(error);
    throw new TokenFileError(`Token file ${path} cannot be read: ${why}`);
  }
  if (info.isSymlink) throw new TokenFileError(`Token file ${path} is a symlink: refused`);
  if (!info.isFile) throw new TokenFileError(`Token file ${path} is not a regular file`);
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new TokenFileError(
      `Token file ${path} has mode ${(info.mode & 0o777).toString(8)}: make it 0600 (chmod 600)`,
    );
  }
  if (info.size > 64 * 1024) throw new TokenFileError(`Token file ${path} is over 64 KiB`);
  const token = Deno.readTextFileSync(path).split(/\r?\n/, 1)[0]!.trim();
  if (token === "") throw new TokenFileError(`Token file ${path} is empty`);
  return token;
}
