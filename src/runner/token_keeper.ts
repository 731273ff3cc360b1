/**
 * The relay token and what the relay makes of it: the token comes from `AGENT_RELAY_TOKEN` or a
 * token file; when the relay refuses it, a token file is read again (an orchestrator may have
 * rotated it), else the relay is asked to renew it. The state (`ok`, `unauthorized`, `unknown`)
 * shows in `/health`, `/status` and `/ready`.
 *
 * @module
 */
import type { RelayAuth } from "../control/mod.ts";
import { addSecret, getLogger } from "../logger.ts";
import { RelayError, type RelayHttpClient } from "../relay/mod.ts";
import { errorText } from "../util/mod.ts";
import { readTokenFile } from "./token_file.ts";

const log = getLogger("runner");

/** Keeps the relay client's token fresh and knows whether the relay takes it. */
export class TokenKeeper {
  readonly #http: Pick<RelayHttpClient, "token" | "setToken" | "renewToken">;
  readonly #file: string | undefined;
  #state: RelayAuth = "unknown";

  constructor(
    http: Pick<RelayHttpClient, "token" | "setToken" | "renewToken">,
    options: { tokenFile?: string | undefined } = {},
  ) {
    this.#http = http;
    this.#file = options.tokenFile;
  }

  /** What the relay made of the token so far. */
  get state(): RelayAuth {
    return this.#state;
  }

  /** The relay took the token (a call with it succeeded). */
  accepted(): void {
    this.#state = "ok";
  }

  /**
   * The relay refused the token: a token file may hold a new one; else the relay is asked to
   * renew it. A renewal the relay refuses too leaves the state `unauthorized`.
   */
  async renew(): Promise<void> {
    if (this.#file) {
      try {
        const token = readTokenFile(this.#file);
        if (token !== this.#http.token) {
          addSecret(token);
          this.#http.setToken(token);
          log.info("the relay refused the token: took the new one from the token file");
          return;
        }
      } catch (error) {
        log.warn(errorText(error));
      }
    }
    try {
      await this.#http.renewToken();
      this.#state = "ok";
    } catch (error) {
      log.warn(`renewing the relay token failed: ${errorText(error)}`);
      if (error instanceof RelayError && error.kind === "auth") this.#state = "unauthorized";
    }
  }
}
