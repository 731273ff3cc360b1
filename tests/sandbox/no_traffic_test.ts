import assert from "node:assert/strict";
import { join } from "node:path";
import { APP_DIR, launcherFlags } from "../../scripts/sandbox.ts";
import { childEnv, MAIN, readJson, tempDir, waitFor } from "./support.ts";

const hasStrace = await new Deno.Command("sh", {
  args: ["-c", "command -v strace && command -v unshare && command -v ip"],
  stdout: "null",
})
  .output().then((o) => o.success, () => false);

/** The address of a `connect`/`sendto`/`sendmsg` line of strace, when it names an inet one. */
export function inetTargets(trace: string): Array<{ call: string; host: string; port: number }> {
  const found = [];
  for (const line of trace.split("\n")) {
    const call = /\b(connect|sendto|sendmsg)\(/.exec(line)?.[1];
    if (!call) continue;
    const v4 = /sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)/.exec(line);
    const v6 = /sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"/.exec(line);
    const m = v4 ?? v6;
    if (m) found.push({ call, host: m[2]!, port: Number(m[1]) });
  }
  return found;
}

Deno.test(
  "no stray traffic: a sandboxed runner in a loopback-only namespace connects to loopback only, no DNS",
  {
    ignore: !hasStrace,
  },
  async () => {
    await using home = await tempDir();
    const trace = join(home.path, "trace");
    const deno = [
      Deno.execPath(),
      "run",
      ...launcherFlags(),
      MAIN,
      "run",
      "--agent-id",
      "s",
      "--relay-url",
      "http://127.0.0.1:9",
      "--provider",
      "command",
      "--",
      "/bin/cat",
    ];
    const script =
      'ip link set lo up && exec strace -f -qq -e trace=connect,sendto,sendmsg -o "$0" "$@"';
    const child = new Deno.Command("unshare", {
      args: ["--user", "--map-root-user", "--net", "sh", "-c", script, trace, ...deno],
      env: childEnv({ AGENT_RELAY_HOME: home.path }),
      clearEnv: true,
      cwd: APP_DIR,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    const info = await waitFor(
      "the runner-info file",
      () => readJson(join(home.path, "state", "s", "runner-info.json")),
    );
    // The runner has tried the relay (loopback) by now: wait for its first failure in the log.
    await waitFor("a relay attempt", async () =>
      /could not reach the relay|failed to connect/.test(
        await Deno.readTextFile(join(home.path, "logs", "session-mirror-s.log")),
      ));
    Deno.kill(info["pid"] as number, "SIGTERM");
    const out = await output;
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const targets = inetTargets(await Deno.readTextFile(trace));
    assert.ok(
      targets.some((t) => t.host === "127.0.0.1" && t.port === 9),
      "saw the relay attempts",
    );
    const stray = targets.filter((t) => !["127.0.0.1", "::1"].includes(t.host) || t.port === 53);
    assert.deepEqual(stray, []);
  },
);

Deno.test("no stray traffic: the strace reader sees non-loopback and DNS targets", () => {
  const lines = [
    'connect(12, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.2")}, 16) = -1',
    'connect(13, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = -1',
    'connect(14, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = -1',
  ].join("\n");
  assert.deepEqual(inetTargets(lines), [
    { call: "connect", host: "10.0.0.2", port: 53 },
    { call: "connect", host: "2001:db8::1", port: 443 },
    { call: "connect", host: "127.0.0.1", port: 9 },
  ]);
});
