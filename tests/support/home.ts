/**
 * A fresh temp dir for a test's `AGENT_RELAY_HOME` (logs, state, agent files) or any other
 * files it writes, removed after: the one place tests make and clean up their dirs.
 *
 * @module
 */

/** Runs `fn` with a new temp dir named `<prefix>…`; removes the dir once `fn` settles. */
export async function withHome<T>(prefix: string, fn: (home: string) => Promise<T>): Promise<T> {
  const home = await Deno.makeTempDir({ prefix });
  try {
    return await fn(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}
