/**
 * The requests the Codex app-server sends to its client: approvals (`item/commandExecution/
 * requestApproval`, `item/fileChange/requestApproval`, `item/permissions/requestApproval` and the
 * legacy `execCommandApproval`, `applyPatchApproval`), answered through the runner's permission
 * policy within a time cap (allow -> accept, deny -> decline); every other request is answered at
 * once, so Codex never waits on the runner.
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import type { PermissionDecision, PermissionRequest } from "../types.ts";
import type { SessionEvent } from "./adapter.ts";
import { METHOD_NOT_FOUND, RpcHandlerError, type RpcId } from "./codex_rpc.ts";
import { isObject, type Json, str } from "./codex_json.ts";
import { errorText } from "../util/mod.ts";

/** What {@linkcode serveCodexRequest} needs from the adapter. */
export interface CodexRequestContext {
  /** The thread the request belongs to (for the permission request id). */
  threadId: string | undefined;
  /** The changes of a file-change item seen starting, by item id. */
  changesOf(itemId: string): unknown;
  decidePermission(request: PermissionRequest): Promise<PermissionDecision>;
  /** Past this, a permission decision is a deny, ms. */
  permissionTimeoutMs: number;
  /** Reports the decision as a `permission` step. */
  emit(event: SessionEvent): void;
  /** Notes activity (re-arms the stall watchdog). */
  touch(): void;
  log: Logger;
}

/**
 * The answer to the server->client request `method` (or a promise of it); throws
 * {@linkcode RpcHandlerError} for a method the runner does not serve.
 */
export function serveCodexRequest(
  request: { method: string; params: unknown; id: RpcId },
  ctx: CodexRequestContext,
): unknown {
  const { method, id } = request;
  const p = isObject(request.params) ? request.params : {};
  const decide = (tool: string, input: unknown) => decideCodexPermission({ id, tool, input }, ctx);
  const accepted = (d: PermissionDecision) => ({
    decision: d.decision === "allow" ? "accept" : "decline",
  });
  const approved = (d: PermissionDecision) => ({
    decision: d.decision === "allow"
      ? "approved"
      : { denied: { rejection: d.reason ?? "Denied by the runner's permission policy" } },
  });
  switch (method) {
    case "item/commandExecution/requestApproval": {
      const tool = str(p.kind) === "writeStdin" ? "write_stdin" : "exec_command";
      const input = { command: p.command ?? null, cwd: p.cwd ?? null, reason: p.reason ?? null };
      return decide(tool, input).then(accepted);
    }
    case "item/fileChange/requestApproval": {
      const itemId = str(p.itemId);
      const input = {
        changes: (itemId ? ctx.changesOf(itemId) : undefined) ?? null,
        reason: p.reason ?? null,
        grantRoot: p.grantRoot ?? null,
      };
      return decide("apply_patch", input).then(accepted);
    }
    case "item/permissions/requestApproval": {
      const asked = isObject(p.permissions) ? p.permissions : {};
      const input = { permissions: asked, reason: p.reason ?? null, cwd: p.cwd ?? null };
      return decide("request_permissions", input).then((d) => {
        const granted: Json = {};
        if (d.decision === "allow") {
          for (const [k, v] of Object.entries(asked)) if (v !== null) granted[k] = v;
        }
        return { permissions: granted, scope: "turn" };
      });
    }
    case "execCommandApproval": {
      const command = Array.isArray(p.command) ? p.command.join(" ") : p.command ?? null;
      const input = { command, cwd: p.cwd ?? null, reason: p.reason ?? null };
      return decide("exec_command", input).then(approved);
    }
    case "applyPatchApproval": {
      const input = { changes: p.fileChanges ?? null, reason: p.reason ?? null };
      return decide("apply_patch", input).then(approved);
    }
    case "mcpServer/elicitation/request":
      ctx.log.info("Codex asked for MCP elicitation input: declined (no user here)");
      return { action: "decline", content: null, _meta: null };
    case "item/tool/requestUserInput":
      ctx.log.info("Codex asked for user input: answered with no answers");
      return { answers: {} };
    default:
      ctx.log.warn(`Codex sent request ${method}, which the runner does not serve`);
      throw new RpcHandlerError(METHOD_NOT_FOUND, `The runner does not serve ${method}`);
  }
}

/** Asks the permission policy; any failure or a decision later than the cap is a deny. */
export async function decideCodexPermission(
  asked: { id: RpcId; tool: string; input: unknown },
  ctx: CodexRequestContext,
): Promise<PermissionDecision> {
  const { id, tool, input } = asked;
  const request: PermissionRequest = {
    requestId: `codex-${ctx.threadId ?? "thread"}-${id}`,
    provider: "codex",
    tool,
    input,
  };
  const capMs = ctx.permissionTimeoutMs;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const cap = new Promise<PermissionDecision>((resolve) => {
    timer = setTimeout(
      () => resolve({ decision: "deny", reason: `No permission decision within ${capMs} ms` }),
      capMs,
    );
  });
  let decision: PermissionDecision;
  try {
    decision = await Promise.race([ctx.decidePermission(request), cap]);
    if (decision?.decision !== "allow" && decision?.decision !== "deny") {
      decision = { decision: "deny", reason: "The permission policy gave no valid decision" };
    }
  } catch (e) {
    decision = { decision: "deny", reason: `Permission decision failed: ${errorText(e)}` };
  } finally {
    clearTimeout(timer);
  }
  const summary = isObject(input) && typeof input.command === "string" ? `: ${input.command}` : "";
  ctx.log.info(`Codex permission ${tool}${summary} -> ${decision.decision}`);
  ctx.emit({
    type: "step",
    kind: "permission",
    text: `${decision.decision} ${tool}${summary}${decision.reason ? ` (${decision.reason})` : ""}`,
    tool,
  });
  ctx.touch();
  return decision;
}
