/**
 * Runs inside the sandbox's Worker (tests/hardening/sandbox_hardening_test.ts, with the grants of
 * the same `run` arguments as a real runner) and reports, as one JSON line, what each attempt to
 * leave the sandbox came to: `ok`, or the error's `Name: message`.
 *
 * Its last argument is a JSON object of paths and ports the test prepared. Nothing here is
 * meant to succeed but the `allowed*` controls; every other attempt names a destination that
 * would be harmless even if the sandbox failed (a `.invalid` name, 0.0.0.0, a temp dir).
 *
 * @module
 */
import { attempt as tryIt, sandboxProbe } from "../../support/sandbox_probe.ts";

interface ProbeInput {
  /** A dir outside every grant. */
  outside: string;
  /** The run's state dir (granted). */
  stateDir: string;
  /** A symlink inside the state dir, planted by the test, pointing at `outside`. */
  plantedLink: string;
  /** The project's dir (granted read-only). */
  appDir: string;
  /** $HOME (granted read-only). */
  home: string;
  /** A loopback server that redirects every request to a `.invalid` host. */
  redirectPort: number;
  /** A pid to signal (the test's own; SIGCONT is harmless). */
  pid: number;
  /** The one program the run may execute. */
  command: string;
}

await sandboxProbe(new URL(import.meta.url), async (args) => {
  const input = JSON.parse(args.at(-1)!) as ProbeInput;
  const result: Record<string, string> = {};
  const attempt = async (key: string, fn: () => unknown) => {
    result[key] = await tryIt(fn);
  };

  // --- network: refused by the permission check, before any lookup or packet -----------------
  await attempt(
    "connect .invalid",
    () => Deno.connect({ hostname: "relay.example.invalid", port: 80 }),
  );
  await attempt("connect 0.0.0.0", () => Deno.connect({ hostname: "0.0.0.0", port: 9 }));
  await attempt("connect 127.0.0.2", () => Deno.connect({ hostname: "127.0.0.2", port: 9 }));
  await attempt(
    "connectTls .invalid",
    () => Deno.connectTls({ hostname: "relay.example.invalid", port: 443 }),
  );
  await attempt("resolveDns", () => Deno.resolveDns("relay.example.invalid", "A"));
  await attempt("listen 0.0.0.0", () => Deno.listen({ hostname: "0.0.0.0", port: 0 }));
  await attempt("websocket .invalid", () =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket("ws://relay.example.invalid/api/bus");
      ws.onopen = () => {
        ws.close();
        resolve();
      };
      ws.onerror = (e) => reject(new Error(`error event: ${(e as ErrorEvent).message ?? "?"}`));
    }));
  await attempt("fetch redirected to .invalid", async () => {
    const res = await fetch(`http://127.0.0.1:${input.redirectPort}/api/messages`);
    await res.body?.cancel();
  });
  await attempt("allowed listen 127.0.0.1", () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));

  // --- files: writes only inside its own dirs --------------------------------------------------
  await attempt("write outside", () => Deno.writeTextFile(`${input.outside}/x`, "x"));
  await attempt(
    "write via ..",
    () => Deno.writeTextFile(`${input.stateDir}/../../../outside-x`, "x"),
  );
  await attempt("write app dir", () => Deno.writeTextFile(`${input.appDir}/probe-x`, "x"));
  await attempt("write home", () => Deno.writeTextFile(`${input.home}/probe-x`, "x"));
  await attempt("write /tmp", () => Deno.writeTextFile(`/tmp/arr-probe-${Deno.pid}`, "x"));
  await attempt("mkdir outside", () => Deno.mkdir(`${input.outside}/d`));
  await attempt("remove outside", () => Deno.remove(`${input.outside}/keep`));
  await attempt("chmod outside", () => Deno.chmod(`${input.outside}/keep`, 0o777));
  await attempt("rename out", async () => {
    await Deno.writeTextFile(`${input.stateDir}/moving`, "x");
    await Deno.rename(`${input.stateDir}/moving`, `${input.outside}/moved`);
  });
  await attempt("symlink out", () => Deno.symlink(input.outside, `${input.stateDir}/link-out`));
  await attempt("write via planted link", () => Deno.writeTextFile(`${input.plantedLink}/x`, "x"));
  await attempt("allowed write state", () => Deno.writeTextFile(`${input.stateDir}/inside`, "x"));

  // --- reads outside its grants ----------------------------------------------------------------
  await attempt("read /etc/passwd", () => Deno.readTextFile("/etc/passwd"));
  await attempt("read /proc/self/environ", () => Deno.readFile("/proc/self/environ"));
  await attempt("read outside", () => Deno.readTextFile(`${input.outside}/keep`));

  // --- programs, signals, native code ----------------------------------------------------------
  await attempt("run bash", () => new Deno.Command("bash", { args: ["-c", "true"] }).output());
  await attempt(
    "run /bin/sh",
    () => new Deno.Command("/bin/sh", { args: ["-c", "true"] }).output(),
  );
  await attempt("run env", () => new Deno.Command("/usr/bin/env").output());
  await attempt(
    "run deno",
    () => new Deno.Command(Deno.execPath(), { args: ["--version"] }).output(),
  );
  await attempt("kill another process", () => Deno.kill(input.pid, "SIGCONT"));
  await attempt("dlopen libc", () => Deno.dlopen("libc.so.6", {}));
  await attempt("allowed run command", () => new Deno.Command(input.command).output());

  // --- environment and system ------------------------------------------------------------------
  await attempt("env PATH", () => Deno.env.get("PATH"));
  await attempt("env OPERATOR_SECRET", () => Deno.env.get("OPERATOR_SECRET"));
  await attempt("env all", () => Deno.env.toObject());
  await attempt("sys networkInterfaces", () => Deno.networkInterfaces());
  await attempt("sys osRelease", () => Deno.osRelease());
  await attempt("allowed sys hostname", () => Deno.hostname());

  return result;
});
