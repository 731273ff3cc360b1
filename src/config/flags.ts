/**
 * The command line's flags: `--name value`, `--name=value`, booleans, `-h`-style short flags,
 * positionals, and everything after `--` passed through untouched. Every mistake is one
 * {@linkcode UsageError} line naming the flag.
 *
 * It parses as `node:util`'s `parseArgs` does in strict mode with positionals allowed, for the
 * two flag types the commands use. It is not `parseArgs` itself because importing `node:util`
 * starts Deno's Node compatibility layer in the launcher and in the sandbox's Worker alike, about
 * 5 MiB and 6 to 8 ms of a start in each (docs/performance.md).
 *
 * @module
 */
import { UsageError } from "./usage_error.ts";

/** One flag: a string that takes a value, or a boolean that takes none. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  /** A one-letter alias: `-h` for `help`. */
  readonly short?: string;
}

/** The flags a command accepts, by long name. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** What {@linkcode parseFlags} found. */
export interface ParsedFlags {
  /** Each flag given, by long name (the last one wins when a flag is repeated). */
  values: Record<string, string | boolean | undefined>;
  /** Arguments before `--` that are not flags. */
  positionals: string[];
  /** Everything after the first `--`, untouched. */
  rest: string[];
}

/** Options of {@linkcode parseFlags}. */
export interface ParseFlagsOptions {
  /** The command, named in errors: `unknown flag --x for "run"`. */
  command: string;
}

/** Parses `args` against `specs`. */
export function parseFlags(
  args: string[],
  specs: FlagSpecs,
  options: ParseFlagsOptions,
): ParsedFlags {
  const { command } = options;
  const dash = args.indexOf("--");
  const own = dash === -1 ? args : args.slice(0, dash);
  const rest = dash === -1 ? [] : args.slice(dash + 1);
  const values: Record<string, string | boolean | undefined> = {};
  const positionals: string[] = [];
  const unknown = (flag: string) =>
    new UsageError(`unknown flag ${flag} for "${command}" (see --help)`);
  const byShort = (letter: string): string | undefined =>
    Object.keys(specs).find((name) => specs[name]!.short === letter);

  for (let i = 0; i < own.length; i++) {
    const arg = own[i]!;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
      if (spec === undefined) throw unknown(`--${name}`);
      if (spec.type === "boolean") {
        if (eq !== -1) throw new UsageError(`flag --${name} takes no value`);
        values[name] = true;
      } else if (eq !== -1) {
        values[name] = arg.slice(eq + 1);
      } else {
        values[name] = takeValue(own, i++, `--${name}`);
      }
    } else if (arg.startsWith("-") && arg !== "-") {
      // One short flag with its value (`-x value`, `-xvalue`), or booleans grouped (`-ab`).
      for (let at = 1; at < arg.length; at++) {
        const letter = arg[at]!;
        const name = byShort(letter);
        if (name === undefined) throw unknown(`-${letter}`);
        if (specs[name]!.type === "boolean") {
          values[name] = true;
          continue;
        }
        if (at + 1 < arg.length) values[name] = arg.slice(at + 1);
        else values[name] = takeValue(own, i++, `-${letter}`);
        break;
      }
    } else {
      positionals.push(arg);
    }
  }
  return { values, positionals, rest };
}

/** The value after the flag at `index`: present, and not itself a flag. */
function takeValue(args: string[], index: number, flag: string): string {
  const value = args[index + 1];
  if (value === undefined) throw new UsageError(`flag ${flag} needs a value`);
  if (value.startsWith("-") && value !== "-") {
    throw new UsageError(
      `flag ${flag} needs a value, not the flag ${value} (a value that starts with a dash is ` +
        `given as ${flag.startsWith("--") ? `${flag}=${value}` : `${flag}${value}`})`,
    );
  }
  return value;
}
