/**
 * POSIX path helpers (`join`, `dirname`, `resolve`, `isAbsolute`, `fromFileUrl`), with the
 * results of `node:path`'s POSIX functions.
 *
 * The program's own code uses these instead of `node:path`: the first `node:` module other than
 * `node:sqlite` starts Deno's Node compatibility layer, which costs every isolate that loads it
 * about 5 MiB and 6 to 8 ms of its start (docs/performance.md), and the runner starts two.
 *
 * @module
 */

/** Whether `path` is absolute. */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/** `path` with `.` and `..` segments and repeated slashes resolved; a trailing slash is kept. */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = isAbsolute(path);
  const trailing = path.endsWith("/");
  const out: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(segment);
  }
  let result = (absolute ? "/" : "") + out.join("/");
  if (result === "") return absolute ? "/" : trailing ? "./" : ".";
  if (trailing && out.length > 0) result += "/";
  return result;
}

/** The non-empty `parts` joined with `/` and normalized; `.` when there are none. */
export function join(...parts: string[]): string {
  const joined = parts.filter((part) => part !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}

/** The absolute path of `parts` taken right to left from the current dir, without a trailing slash. */
export function resolve(...parts: string[]): string {
  let path = "";
  for (let i = parts.length - 1; i >= 0 && !isAbsolute(path); i--) {
    const part = parts[i]!;
    if (part !== "") path = path === "" ? part : `${part}/${path}`;
  }
  if (!isAbsolute(path)) path = path === "" ? Deno.cwd() : `${Deno.cwd()}/${path}`;
  const normal = normalize(path);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

/** The dir part of `path`: `/a` for `/a/b` and `/a/b/`, `.` for `a`, `/` for `/`. */
export function dirname(path: string): string {
  if (path === "") return ".";
  let end = path.length;
  while (end > 1 && path[end - 1] === "/") end--;
  const slash = path.lastIndexOf("/", end - 1);
  if (slash === -1) return ".";
  return slash === 0 ? "/" : path.slice(0, slash);
}

/** The path of a `file:` URL (percent-decoded). Throws a `TypeError` for any other URL. */
export function fromFileUrl(url: string | URL): string {
  const parsed = url instanceof URL ? url : new URL(url);
  if (parsed.protocol !== "file:") {
    throw new TypeError(`URL ${parsed.href} is not a file: URL`);
  }
  return decodeURIComponent(parsed.pathname.replace(/%(?![0-9A-Fa-f]{2})/g, "%25"));
}
