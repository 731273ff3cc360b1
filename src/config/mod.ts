/**
 * A run's configuration: flags, environment and defaults resolved into one {@linkcode RunConfig},
 * the environment variables the runner may read, and the dirs it prepares.
 *
 * @module
 */
export * from "./config.ts";
export * from "./dirs.ts";
export * from "./env.ts";
export * from "./flags.ts";
export * from "./usage_error.ts";
