/**
 * A run's grants: exactly the paths, program and hosts one command may touch, computed by the
 * launcher from the resolved configuration and handed to the Worker it runs in (docs/sandbox.md).
 *
 * Every grant is a list of whole paths, never a joined string: a path holding a comma, a space
 * or any other character stays one path.
 *
 * @module
 */
import { dirname, isAbsolute, join, resolve } from "../util/mod.ts";

/** Loopback only: the one network a sandboxed command may reach. */
export const LOOPBACK: readonly string[] = ["127.0.0.1", "localhost", "[::1]"];

/** What a run may touch, as `/status` shows it. */
export interface Grants {
  read: string[];
  write: string[];
  run: string[];
  net: string[];
}

/** The Worker's full permission set: the grants plus the variables and system calls. */
export interface SandboxPermissions extends Grants {
  env: string[];
  sys: string[];
}

/** The resolved paths of a `run` (a structural slice of the configuration). */
export interface RunPaths {
  provider: "claude" | "codex" | "command";
  providerArgs: string[];
  cwd: string;
  stateDir: string;
  logDir: string;
  outboxDir: string;
  infoFile: string;
  tokenFile: string | undefined;
}

/** The environment the grants are computed from. */
export type GrantEnv = Record<string, string | undefined>;

const unique = (paths: (string | undefined)[]): string[] => [
  ...new Set(paths.filter((p): p is string => p !== undefined && p !== "")),
];

/** `program` resolved on `PATH` to an absolute path; a path (with `/`) is made absolute. */
export function whichProgram(program: string, env: GrantEnv): string | undefined {
  if (program.includes("/")) return resolve(program);
  for (const dir of (env["PATH"] ?? "").split(":")) {
    if (!dir || !isAbsolute(dir)) continue; // A relative PATH entry depends on the cwd: skipped.
    const candidate = join(dir, program);
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** The provider's executable for a run, as an absolute path when it can be found. */
export function providerProgram(paths: RunPaths, env: GrantEnv): string | undefined {
  const program = paths.provider === "command"
    ? paths.providerArgs[0]
    : paths.provider === "claude"
    ? env["AGENT_RELAY_CLAUDE_BIN"] || "claude"
    : env["AGENT_RELAY_CODEX_BIN"] || "codex";
  if (program === undefined || program === "") return undefined;
  // Not found: granted as a path of its own (absolute), which can run nothing else.
  return whichProgram(program, env) ?? resolve(program);
}

/** The provider's own config dir: Claude's `CLAUDE_CONFIG_DIR` or `~/.claude`, the Codex home. */
export function providerConfigDir(
  provider: RunPaths["provider"],
  env: GrantEnv,
): string | undefined {
  const home = env["HOME"];
  if (provider === "claude") {
    return env["CLAUDE_CONFIG_DIR"] || (home ? join(home, ".claude") : undefined);
  }
  if (provider === "codex") return env["CODEX_HOME"] || (home ? join(home, ".codex") : undefined);
  return undefined;
}

/**
 * The grants of `run`: write the log, state, outbox and info dirs; read those, the agent cwd, the
 * provider's config dir, the token file and the program's files (`appDir`); run the one
 * provider; loopback only.
 */
export function runGrants(paths: RunPaths, env: GrantEnv, options: { appDir: string }): Grants {
  const write = unique([paths.logDir, paths.stateDir, paths.outboxDir, dirname(paths.infoFile)]);
  return {
    read: unique([
      ...write,
      paths.cwd,
      providerConfigDir(paths.provider, env),
      paths.tokenFile,
      options.appDir,
    ]),
    write,
    run: unique([providerProgram(paths, env)]),
    net: [...LOOPBACK],
  };
}

/** The grants of `outbox`: its outbox dir (read and write, for requeue and purge). */
export function outboxGrants(outboxDir: string | undefined, stateDir: string | undefined): Grants {
  const write = unique([outboxDir]);
  return { read: unique([...write, stateDir]), write, run: [], net: [] };
}

/** The grants of `dev-relay`: its database's dir, loopback. */
export function devRelayGrants(db: string | undefined): Grants {
  const dir = db && db !== ":memory:" ? [dirname(resolve(db))] : [];
  return { read: [...dir], write: [...dir], run: [], net: [...LOOPBACK] };
}

/** The grants of `send`: loopback only. */
export function sendGrants(): Grants {
  return { read: [], write: [], run: [], net: [...LOOPBACK] };
}

/**
 * `grants` with read access to the program's modules (`modules`: its `src/`, the `deno.json`
 * the version comes from, and the bundle's folder), which the Worker loads after it starts (its
 * command's adapter or modules: src/util/import_lazily.ts). A module path a read grant already
 * covers is not added again.
 */
export function withProgramModules(grants: Grants, modules: string[]): Grants {
  const covers = (grant: string, path: string) => path === grant || path.startsWith(`${grant}/`);
  const missing = modules.filter((path) => !grants.read.some((grant) => covers(grant, path)));
  return missing.length === 0 ? grants : { ...grants, read: unique([...grants.read, ...missing]) };
}

/** The Worker's `deno.permissions` option for a set: each grant a list, nothing else allowed. */
export function workerPermissions(set: SandboxPermissions): Deno.PermissionOptionsObject {
  const list = (values: string[]) => values.length > 0 ? [...values] : false;
  return {
    read: list(set.read),
    write: list(set.write),
    run: list(set.run),
    net: list(set.net),
    env: list(set.env),
    sys: list(set.sys),
    ffi: false,
    import: false,
  };
}
