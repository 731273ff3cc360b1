/**
 * The sandbox's Worker for `dev-relay`: loads only that command (src/entry/mod.ts).
 *
 * @module
 */
import { devRelayCommand } from "../cli/dev_relay.ts";
import { serveCommand } from "./worker.ts";

serveCommand(devRelayCommand);
