/**
 * The runner's sandbox: turns deno.json's `permissions.runner` set into Deno permission flags.
 *
 * The set is the one place the sandbox is written down. Its paths hold `${NAME}` placeholders,
 * since the dirs an agent uses are only known at launch (`deno task start`, the tests) or at build
 * time (`deno task compile`). An entry whose placeholders are all unset is left out, so a grant
 * never widens by accident.
 *
 * - `deno run -A scripts/sandbox.ts exec main.ts ARGS...` runs the program under the set, with the
 *   dirs of `ARGS` (`deno task start`).
 * - `deno run -A scripts/sandbox.ts flags ARGS...` prints the flags.
 * - `deno run -A scripts/sandbox.ts compile main.ts` builds `dist/agent-relay-runner` with the set
 *   baked in, dirs from the build environment (docs/sandbox.md).
 *
 * @module
 */
import { dirname, isAbsolute, join, resolve } from "node:path";
import { type Env, resolveOutboxDir, resolveRunConfig } from "../src/config/mod.ts";

/** The project root (where deno.json is). */
export const APP_DIR: string = resolve(import.meta.dirname ?? ".", "..");

/** deno.json's `permissions.runner`, as written (placeholders unexpanded). */
export interface PermissionSet {
  net?: string[] | boolean;
  read?: string[] | boolean;
  write?: string[] | boolean;
  run?: string[] | boolean;
  env?: string[] | boolean;
  sys?: string[] | boolean;
}

/** Reads the runner's permission set from deno.json. */
export function loadPermissionSet(configPath = join(APP_DIR, "deno.json")): PermissionSet {
  const config = JSON.parse(Deno.readTextFileSync(configPath));
  const set = config?.permissions?.runner;
  if (!set || typeof set !== "object") {
    throw new Error(`${configPath} has no permissions.runner set`);
  }
  return set as PermissionSet;
}

const PLACEHOLDER = /\$\{([A-Z_]+)\}/g;

/** Expands `${NAME}` placeholders; `undefined` when every placeholder in `value` is unset. */
export function expand(
  value: string,
  vars: Record<string, string | undefined>,
): string | undefined {
  let missing = false;
  const out = value.replace(PLACEHOLDER, (_, name: string) => {
    const v = vars[name];
    if (v === undefined || v === "") missing = true;
    return v ?? "";
  });
  return missing ? undefined : out;
}

/** The permission flags for a set, placeholders expanded from `vars`. */
export function permissionFlags(
  set: PermissionSet,
  vars: Record<string, string | undefined>,
): string[] {
  const flags: string[] = [];
  for (const name of ["net", "read", "write", "run", "env", "sys"] as const) {
    const grant = set[name];
    if (grant === true) flags.push(`--allow-${name}`);
    if (!Array.isArray(grant)) continue;
    const values = [...new Set(grant.map((v) => expand(v, vars)).filter((v) => v !== undefined))];
    if (values.length > 0) flags.push(`--allow-${name}=${values.join(",")}`);
  }
  flags.push("--no-prompt");
  return flags;
}

function which(program: string, env: Env): string | undefined {
  if (program.includes("/")) return resolve(program);
  for (const dir of (env["PATH"] ?? "").split(":")) {
    if (!dir) continue;
    try {
      const candidate = join(dir, program);
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/**
 * The placeholder values for running `main.ts` with `args`: for `run`, the dirs its config
 * resolves to; for the other commands, only the base dir.
 */
export function varsFor(args: string[], env: Env): Record<string, string | undefined> {
  const vars: Record<string, string | undefined> = { APP_DIR };
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i === -1 ? undefined : args[i + 1];
  };
  if (args[0] === "outbox") {
    // The operator CLI reads (and for requeue/purge writes) the agent's outbox only.
    try {
      vars["OUTBOX_DIR"] = resolveOutboxDir(
        { agentId: flag("--agent-id"), stateDir: flag("--state-dir") },
        env,
      );
    } catch {
      // The program reports the usage error.
    }
    return vars;
  }
  if (args[0] === "dev-relay") {
    const db = flag("--db");
    if (db && db !== ":memory:") vars["STATE_DIR"] = dirname(resolve(db));
    return vars;
  }
  if (args[0] !== "run") return vars;
  let config;
  try {
    config = resolveRunConfig(args.slice(1), env);
  } catch {
    return vars; // The program itself reports the usage error.
  }
  vars["LOG_DIR"] = config.logDir;
  vars["STATE_DIR"] = config.stateDir;
  vars["OUTBOX_DIR"] = config.outboxDir;
  vars["INFO_DIR"] = dirname(config.infoFile);
  vars["AGENT_CWD"] = config.cwd;
  if (env["HOME"]) vars["PROVIDER_HOME"] = env["HOME"];
  // Only the provider this run uses may be executed.
  if (config.provider === "command") {
    const program = config.providerArgs[0];
    if (program) vars["COMMAND"] = which(program, env) ?? program;
  } else if (config.provider === "claude") {
    const bin = env["AGENT_RELAY_CLAUDE_BIN"] ?? "claude";
    vars["CLAUDE_BIN"] = which(bin, env) ?? bin;
  } else {
    const bin = env["AGENT_RELAY_CODEX_BIN"] ?? "codex";
    vars["CODEX_BIN"] = which(bin, env) ?? bin;
  }
  return vars;
}

/** Build-time placeholder values for `deno task compile` (docs/sandbox.md). */
export function buildVars(env: Env): Record<string, string | undefined> {
  const home = env["AGENT_RELAY_HOME"] ??
    (env["HOME"] ? join(env["HOME"], ".agent-relay") : undefined);
  const abs = (p: string | undefined) => p && (isAbsolute(p) ? p : resolve(p));
  return {
    LOG_DIR: home,
    STATE_DIR: home,
    OUTBOX_DIR: abs(env["AGENT_RELAY_RUNNER_OUTBOX_DIR"]),
    INFO_DIR: home,
    AGENT_CWD: abs(env["AGENT_RELAY_READ"] ?? env["HOME"]),
    PROVIDER_HOME: env["HOME"],
    APP_DIR: undefined,
    CLAUDE_BIN: env["AGENT_RELAY_CLAUDE_BIN"] ?? "claude",
    CODEX_BIN: env["AGENT_RELAY_CODEX_BIN"] ?? "codex",
    COMMAND: env["AGENT_RELAY_COMMANDS"],
  };
}

/** The full `deno run` argv (after `deno`) that runs `main` with `args` under the sandbox. */
export function sandboxedRunArgs(main: string, args: string[], env: Env): string[] {
  const flags = permissionFlags(loadPermissionSet(), varsFor(args, env));
  return ["run", "--frozen", `--config=${join(APP_DIR, "deno.json")}`, ...flags, main, ...args];
}

async function exec(main: string, args: string[]): Promise<number> {
  const env = Deno.env.toObject();
  const child = new Deno.Command(Deno.execPath(), {
    args: sandboxedRunArgs(resolve(main), args, env),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const forward = (signal: Deno.Signal) => () => {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  };
  const onTerm = forward("SIGTERM");
  const onInt = forward("SIGINT");
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onInt);
  const status = await child.status;
  Deno.removeSignalListener("SIGTERM", onTerm);
  Deno.removeSignalListener("SIGINT", onInt);
  return status.code;
}

async function compile(main: string, rest: string[]): Promise<number> {
  const env = Deno.env.toObject();
  const flags = permissionFlags(loadPermissionSet(), buildVars(env));
  const output = rest[0] ?? join(APP_DIR, "dist", "agent-relay-runner");
  const args = [
    "compile",
    "--frozen",
    ...flags,
    "--include",
    join(APP_DIR, "hooks"),
    "--output",
    output,
    resolve(main),
  ];
  // deno-lint-ignore no-console
  console.error(`deno ${args.join(" ")}`);
  if (env["DENORT_BIN"]) {
    // deno-lint-ignore no-console
    console.error(`using the local runtime DENORT_BIN=${env["DENORT_BIN"]} (no download)`);
  }
  const status = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn().status;
  return status.code;
}

if (import.meta.main) {
  const [command, ...rest] = Deno.args;
  if (command === "exec" && rest[0]) {
    Deno.exit(await exec(rest[0], rest.slice(1)));
  } else if (command === "flags") {
    // deno-lint-ignore no-console
    console.log(permissionFlags(loadPermissionSet(), varsFor(rest, Deno.env.toObject())).join(" "));
  } else if (command === "compile" && rest[0]) {
    Deno.exit(await compile(rest[0], rest.slice(1)));
  } else {
    // deno-lint-ignore no-console
    console.error("usage: sandbox.ts exec MAIN ARGS... | flags ARGS... | compile MAIN [OUTPUT]");
    Deno.exit(2);
  }
}
