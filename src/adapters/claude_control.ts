/**
 * Claude Code's control protocol on stdio: the control requests the adapter sends (`initialize`,
 * `interrupt`) and their answers, and the ones Claude sends (`can_use_tool` permission questions,
 * answered by the runner's policy within a time cap; anything else refused).
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import type { PermissionDecision, PermissionRequest } from "../types.ts";
import {
  type ClaudeOutput,
  encodeControlError,
  encodeControlRequest,
  encodeControlResponse,
} from "./claude_stream.ts";
import { errorText } from "../util/mod.ts";

/** Claude's answer to a control request. */
export interface ControlAnswer {
  ok: boolean;
  response?: unknown;
  error?: string;
}

interface PendingControl {
  resolve(answer: ControlAnswer): void;
  reject(error: Error): void;
}

/** Options of {@linkcode ControlChannel}. */
export interface ControlChannelOptions {
  /** Writes one line to Claude's stdin. */
  write(line: string): Promise<void>;
  /** Answers a permission question (the runner's policy). */
  decidePermission(request: PermissionRequest): Promise<PermissionDecision>;
  /** A permission question unanswered for this long is denied, ms. */
  permissionTimeoutMs: number;
  log: Logger;
}

/** The control requests of one Claude process, both ways. */
export class ControlChannel {
  readonly #options: ControlChannelOptions;
  readonly #pending = new Map<string, PendingControl>();
  readonly #cancelled = new Set<string>();

  constructor(options: ControlChannelOptions) {
    this.#options = options;
  }

  /** Sends a control request; resolves with Claude's answer, rejects when it cannot be sent. */
  request(request: Record<string, unknown>): Promise<ControlAnswer> {
    const id = `${request.subtype}-${crypto.randomUUID()}`;
    return new Promise<ControlAnswer>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#options.write(encodeControlRequest(id, request)).catch((error) => {
        this.#pending.delete(id);
        reject(new Error(`Could not send ${request.subtype} to Claude: ${errorText(error)}`));
      });
    });
  }

  /**
   * Sends `initialize` and waits for the answer: `ready`, or why not (`timeout` after
   * `timeoutMs`, `exited` when `exited` settles first, or Claude's error).
   */
  async initialize(
    exited: Promise<unknown>,
    timeoutMs: number,
  ): Promise<"ready" | "timeout" | "exited" | Error> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const answer = this.request({ subtype: "initialize" });
    answer.catch(() => {});
    try {
      return await Promise.race([
        answer.then((a) => a.ok ? "ready" as const : new Error(a.error ?? "initialize failed")),
        timeout,
        exited.then(() => "exited" as const),
      ]).catch((error) => error instanceof Error ? error : new Error(String(error)));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Takes one control-protocol line from Claude. */
  receive(
    output: ClaudeOutput & { kind: "control-request" | "control-response" | "control-cancel" },
  ): void {
    switch (output.kind) {
      case "control-response": {
        const pending = this.#pending.get(output.requestId);
        if (!pending) return;
        this.#pending.delete(output.requestId);
        const answer: ControlAnswer = { ok: output.ok, response: output.response };
        if (output.error !== undefined) answer.error = output.error;
        pending.resolve(answer);
        return;
      }
      case "control-cancel":
        this.#cancelled.add(output.requestId);
        return;
      case "control-request":
        if (output.subtype === "can_use_tool") {
          void this.#answerPermission(output.requestId, output.request);
          return;
        }
        this.#options.write(
          encodeControlError(output.requestId, `Unsupported control request: ${output.subtype}`),
        ).catch(() => {});
    }
  }

  /** Rejects every request still waiting for an answer (Claude exited). */
  failAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }

  async #answerPermission(requestId: string, request: Record<string, unknown>): Promise<void> {
    const { decidePermission, permissionTimeoutMs, log } = this.#options;
    const tool = typeof request.tool_name === "string" ? request.tool_name : "unknown";
    const input = request.input ?? {};
    let decision: PermissionDecision;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      decision = await Promise.race([
        decidePermission({ requestId, provider: "claude", tool, input }),
        new Promise<PermissionDecision>((resolve) => {
          timer = setTimeout(() =>
            resolve({
              decision: "deny",
              reason: `No permission decision within ${permissionTimeoutMs} ms`,
            }), permissionTimeoutMs);
        }),
      ]);
    } catch (error) {
      decision = { decision: "deny", reason: `The permission check failed: ${errorText(error)}` };
    } finally {
      clearTimeout(timer);
    }
    log.info(`permission for ${tool}: ${decision.decision}`);
    if (this.#cancelled.delete(requestId)) return;
    const response = decision.decision === "allow" ? { behavior: "allow", updatedInput: input } : {
      behavior: "deny",
      message: decision.reason ?? "Denied by the runner's permission policy",
    };
    await this.#options.write(encodeControlResponse(requestId, response)).catch(() => {});
  }
}
