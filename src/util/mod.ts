/**
 * Small helpers every subsystem shares: error text, the clock seam and backoff.
 *
 * @module
 */
export { errorText } from "./error_text.ts";
export { type Clock, systemClock, type TimerId } from "./clock.ts";
export {
  backoffDelay,
  type BackoffOptions,
  backoffStep,
  checkBackoff,
  DEFAULT_BACKOFF,
} from "./backoff.ts";
export { escapeText, hasUnsafeText } from "./escape_text.ts";
export { type LimitedRead, readLimited, type ReadLimitedOptions } from "./read_limited.ts";
export {
  checkNotSymlink,
  chmodNoFollow,
  openNoFollow,
  SymlinkError,
  writeFileNoFollow,
} from "./no_follow.ts";
export { dirname, fromFileUrl, isAbsolute, join, normalize, resolve } from "./path.ts";
export { importLazily } from "./import_lazily.ts";
export { APP_URL, appDir } from "./app_dir.ts";
