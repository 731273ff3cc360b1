/**
 * The runner's version, read from deno.json so there is one place to bump it.
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };

/** The runner's version (semver). */
export const VERSION: string = config.version;
