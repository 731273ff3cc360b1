/**
 * Placeholder replaced below.
 *
 * @module
 */
export function runClaudeTurnBench(_dir: string): Promise<string[]> {
  return Promise.resolve(["claude: not measured yet"]);
}
