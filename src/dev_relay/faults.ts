/**
 * The reference relay's fault switches, for tests and demos: what they are, their defaults,
 * and the validation of a patch sent to `POST /admin/faults`.
 *
 * HTTP faults apply to `/api/*` requests other than the bus upgrade, in this order: `slowMs`,
 * then `failStatus`, then `garbage`. Bus faults: `dropWebSockets`, `busSilent`. `insights409`
 * makes `POST /api/insights` answer 409. `down` closes the listener (connections refused).
 * Admin requests are never faulted.
 *
 * @module
 */

/** The fault switches. */
export interface DevRelayFaults {
  /** The listener is closed: every connection is refused. */
  down: boolean;
  /** Delay every API answer by this many milliseconds. */
  slowMs: number;
  /** Answer every API request with this status (0 = off): 500, 503, 429, 408, 400, 403... */
  failStatus: number;
  /** With `failStatus`: only the next N requests fail (0 = all until cleared). */
  failCount: number;
  /** Answer every API request with 200 and a body that is not JSON. */
  garbage: boolean;
  /** Close every bus socket and refuse new upgrades (503) while set. */
  dropWebSockets: boolean;
  /** The bus neither answers pings nor pushes frames: a connection that looks dead. */
  busSilent: boolean;
  /** `POST /api/insights` answers 409 (insights turned off). */
  insights409: boolean;
  /**
   * The unread inbox lists `session` (mirror) messages too: a relay the contract does not forbid
   * from doing so.
   */
  sessionUnread: boolean;
}

/** Every switch off. */
export function noFaults(): DevRelayFaults {
  return {
    down: false,
    slowMs: 0,
    failStatus: 0,
    failCount: 0,
    garbage: false,
    dropWebSockets: false,
    busSilent: false,
    insights409: false,
    sessionUnread: false,
  };
}

/** A change to the switches. */
export type FaultPatch = Partial<DevRelayFaults>;

const BOOLEANS = [
  "down",
  "garbage",
  "dropWebSockets",
  "busSilent",
  "insights409",
  "sessionUnread",
] as const;
const NUMBERS = ["slowMs", "failStatus", "failCount"] as const;

/**
 * Validates a patch from JSON. Returns the patch, or a sentence naming the bad field.
 * `extra` names keys the caller handles itself (actions such as `expireTokens`).
 */
export function parseFaultPatch(
  value: unknown,
  extra: readonly string[] = [],
): FaultPatch | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "the body must be a JSON object of fault switches";
  }
  const patch: FaultPatch = {};
  for (const [key, v] of Object.entries(value)) {
    if ((BOOLEANS as readonly string[]).includes(key)) {
      if (typeof v !== "boolean") return `fault "${key}" must be true or false`;
      patch[key as typeof BOOLEANS[number]] = v;
    } else if ((NUMBERS as readonly string[]).includes(key)) {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
        return `fault "${key}" must be a non-negative integer`;
      }
      if (key === "failStatus" && v !== 0 && (v < 400 || v > 599)) {
        return `fault "failStatus" must be 0 or an HTTP error status (400 to 599), not ${v}`;
      }
      patch[key as typeof NUMBERS[number]] = v;
    } else if (!extra.includes(key)) {
      return `unknown fault "${key}" (known: ${[...BOOLEANS, ...NUMBERS, ...extra].join(", ")})`;
    }
  }
  return patch;
}
