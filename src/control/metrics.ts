/**
 * `GET /metrics`: the figures the control server keeps itself ({@linkcode ControlStats}: hook
 * counts and the hook latency histogram, stop blocks, hook-fatal reports, refused requests) and
 * their rendering, with the runner's own figures, as Prometheus text (version 0.0.4).
 *
 * @module
 */
import { AGENT_STATUSES } from "../types.ts";
import { VERSION } from "../version.ts";
import { isBundledModule } from "../bundle/mod.ts";
import { APP_URL } from "../util/mod.ts";
import type { ControlCallbacks, MetricSample } from "./callbacks.ts";

/** Whether this code runs from the program's bundle (`deno task build`), not its source files. */
const BUNDLED = isBundledModule(import.meta.url, APP_URL);

/** The histogram's upper bounds, in seconds (`+Inf` is implied). */
export const HISTOGRAM_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
] as const;

/** The `content-type` of `GET /metrics`. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One event's latency histogram: cumulative bucket counts, sum and count. */
interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

/** What the server counts itself. */
export class ControlStats {
  /** Hook requests by `event NUL status`. */
  readonly counts = new Map<string, number>();
  /** Hook latency by event. */
  readonly histograms = new Map<string, Histogram>();
  stopBlocks = 0;
  hookFatals = 0;
  unauthorized = 0;
  /** Requests answered 408: the body did not arrive in time. */
  bodyTimeouts = 0;
  /** Requests answered 503: too many in flight. */
  busy = 0;

  /** Counts one hook answered with `status` after `seconds`. */
  recordHook(event: string, status: number, seconds: number): void {
    const key = `${event}\u0000${status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let h = this.histograms.get(event);
    if (!h) {
      h = { buckets: HISTOGRAM_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.histograms.set(event, h);
    }
    for (let i = 0; i < HISTOGRAM_BUCKETS.length; i++) {
      if (seconds <= HISTOGRAM_BUCKETS[i]!) h.buckets[i]!++;
    }
    h.sum += seconds;
    h.count++;
  }
}

type Labels = Record<string, string> | undefined;

function labelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Labels): string {
  if (!pairs) return "";
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${labelValue(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function num(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const PREFIX = "agent_relay_runner_";

/** Prometheus text, built line by line. */
class Exposition {
  readonly lines: string[] = [];

  metric(name: string, head: { type: string; help: string }, samples: Array<[Labels, number]>) {
    this.lines.push(`# HELP ${name} ${head.help}`, `# TYPE ${name} ${head.type}`);
    for (const [l, v] of samples) this.lines.push(`${name}${labels(l)} ${num(v)}`);
  }

  /** One unlabelled sample. */
  single(name: string, head: { type: string; help: string }, value: number) {
    this.metric(PREFIX + name, head, [[undefined, value]]);
  }

  histogram(name: string, help: string, histograms: Map<string, Histogram>) {
    const full = PREFIX + name;
    this.lines.push(`# HELP ${full} ${help}`, `# TYPE ${full} histogram`);
    for (const [event, h] of histograms) {
      const e = labelValue(event);
      HISTOGRAM_BUCKETS.forEach((le, i) => {
        this.lines.push(`${full}_bucket{event="${e}",le="${le}"} ${h.buckets[i]}`);
      });
      this.lines.push(`${full}_bucket{event="${e}",le="+Inf"} ${h.count}`);
      this.lines.push(`${full}_sum{event="${e}"} ${num(h.sum)}`);
      this.lines.push(`${full}_count{event="${e}"} ${h.count}`);
    }
  }

  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

const gauge = (help: string) => ({ type: "gauge", help });
const counter = (help: string) => ({ type: "counter", help });

/** Options of {@linkcode renderMetrics}. */
export interface RenderMetricsOptions {
  /** Epoch milliseconds now (for the snapshot's age). */
  now: number;
}

/** The `GET /metrics` text: the runner's figures, then the server's own. */
export function renderMetrics(
  callbacks: ControlCallbacks,
  stats: ControlStats,
  options: RenderMetricsOptions,
): string {
  const out = new Exposition();
  const snapshot = callbacks.status();
  out.single(
    "bus_connected",
    gauge("1 while the relay bus is connected, else 0."),
    snapshot.bus === "open" ? 1 : 0,
  );
  out.metric(
    PREFIX + "agent_status",
    gauge("The agent's status: 1 for the current one, 0 for the others."),
    AGENT_STATUSES.map((status) => [{ status }, snapshot.status === status ? 1 : 0]),
  );
  out.metric(
    PREFIX + "build_info",
    gauge(
      "The runner's version, the Deno version it runs on, and whether it runs from the " +
        "bundle (always 1).",
    ),
    [[{ version: VERSION, deno: Deno.version.deno, bundled: String(BUNDLED) }, 1]],
  );
  const m = callbacks.metrics?.();
  if (m) {
    out.single("outbox_pending", gauge("Outbox events waiting to be sent."), m.outbox.pending);
    out.single(
      "outbox_poisoned",
      gauge("Outbox events the relay refused for good."),
      m.outbox.poisoned,
    );
    out.single(
      "outbox_delivered_total",
      counter("Outbox events delivered to the relay."),
      m.outbox.delivered,
    );
  }
  const refreshedAt = callbacks.obligations.refreshedAt;
  out.single(
    "reply_obligations",
    gauge("Reply obligations in the local snapshot."),
    callbacks.obligations.get().length,
  );
  out.single(
    "reply_obligations_age_seconds",
    gauge("Age of the local reply-obligation snapshot (NaN before the first refresh)."),
    refreshedAt === undefined ? NaN : Math.max(0, options.now - refreshedAt) / 1000,
  );
  const counts: Array<[Labels, number]> = [];
  for (const [key, value] of stats.counts) {
    const [event = "", code = ""] = key.split("\u0000");
    counts.push([{ event, code }, value]);
  }
  out.metric(
    PREFIX + "hook_requests_total",
    counter("Hook requests by event and HTTP status."),
    counts,
  );
  out.histogram(
    "hook_duration_seconds",
    "Time the control server took to answer a hook.",
    stats.histograms,
  );
  out.single("stop_blocks_total", counter("Stops blocked for owed replies."), stats.stopBlocks);
  out.single(
    "hook_fatal_total",
    counter("Hooks that reported their own failure."),
    stats.hookFatals,
  );
  out.single(
    "control_unauthorized_total",
    counter("Control requests refused for a missing or wrong secret."),
    stats.unauthorized,
  );
  out.single(
    "control_body_timeouts_total",
    counter("Control requests answered 408: the body did not arrive within the deadline."),
    stats.bodyTimeouts,
  );
  out.single(
    "control_busy_total",
    counter("Control requests answered 503: too many requests were being answered."),
    stats.busy,
  );
  for (const [name, list] of samplesByName(m?.samples ?? [])) {
    const first = list[0]!;
    out.metric(
      name,
      { type: first.type, help: first.help.replace(/\n/g, " ") },
      list.map((s) => [s.labels, s.value]),
    );
  }
  return out.text();
}

/** The runner's samples with a valid name, grouped by name in first-seen order. */
function samplesByName(samples: MetricSample[]): Map<string, MetricSample[]> {
  const byName = new Map<string, MetricSample[]>();
  for (const s of samples) {
    if (!METRIC_NAME.test(s.name)) continue;
    const list = byName.get(s.name) ?? [];
    list.push(s);
    byName.set(s.name, list);
  }
  return byName;
}
