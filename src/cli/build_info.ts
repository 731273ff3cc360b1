/**
 * What `--version` prints: the runner's version, the git commit it was built from and the Deno
 * version running it.
 *
 * The commit is read, in order, from a `BUILD_COMMIT` file at the app's root (written and
 * embedded at build time by `deno task compile`), then from the repository's `.git` when run from
 * source (HEAD, its loose ref or `packed-refs`; no `git` process, so the sandbox's read grant on
 * the app dir is enough), else it is `unknown`. The line ends `, bundled` when the program runs
 * from its bundle (src/bundle/).
 *
 * @module
 */
import { APP_URL, appDir, join } from "../util/mod.ts";
import { VERSION } from "../version.ts";
import { isBundledModule } from "../bundle/mod.ts";

/** The build's identity. */
export interface BuildInfo {
  version: string;
  /** A 40-hex commit id, or `unknown`. */
  commit: string;
  /** `Deno.version.deno`. */
  deno: string;
  /** Whether this code runs from the bundle (`deno task build`) rather than the source files. */
  bundled: boolean;
}

const COMMIT = /^[0-9a-f]{40}$/;

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

/** The commit HEAD names in the git dir `gitDir`, or `undefined`. */
export function headCommit(gitDir: string): string | undefined {
  let dir = gitDir;
  const pointer = readText(dir);
  // A worktree or submodule: `.git` is a file saying `gitdir: <path>`.
  if (pointer?.startsWith("gitdir: ")) dir = join(gitDir, "..", pointer.slice(8).trim());
  const head = readText(join(dir, "HEAD"));
  if (head === undefined) return undefined;
  if (COMMIT.test(head)) return head;
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (!ref || ref.includes("..")) return undefined;
  const common = readText(join(dir, "commondir"));
  const dirs = common ? [dir, join(dir, common)] : [dir];
  for (const d of dirs) {
    const loose = readText(join(d, ref));
    if (loose && COMMIT.test(loose)) return loose;
    const packed = readText(join(d, "packed-refs"));
    const line = packed?.split("\n").find((l) => l.endsWith(` ${ref}`));
    const id = line?.slice(0, 40);
    if (id && COMMIT.test(id)) return id;
  }
  return undefined;
}

/** The commit this build came from: baked at build time, else the repository's HEAD. */
export function buildCommit(root: string | undefined = appDir()): string {
  if (root === undefined) return "unknown";
  const baked = readText(join(root, "BUILD_COMMIT"));
  if (baked && COMMIT.test(baked)) return baked;
  return headCommit(join(root, ".git")) ?? "unknown";
}

/** The version, commit and Deno version. */
export function buildInfo(): BuildInfo {
  return {
    version: VERSION,
    commit: buildCommit(),
    deno: Deno.version.deno,
    bundled: isBundledModule(import.meta.url, APP_URL),
  };
}

/** `agent-relay-runner 0.1.0 (commit 0123456789ab, deno 2.9.6)`, and `, bundled` from the bundle. */
export function versionLine(info: BuildInfo = buildInfo()): string {
  const commit = info.commit === "unknown" ? "unknown" : info.commit.slice(0, 12);
  const bundled = info.bundled ? ", bundled" : "";
  return `agent-relay-runner ${info.version} (commit ${commit}, deno ${info.deno}${bundled})`;
}
