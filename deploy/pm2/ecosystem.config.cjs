// pm2 ecosystem entry for one runner: `pm2 start deploy/pm2/ecosystem.config.cjs`.
// See docs/deploy.md. pm2 sends SIGINT on stop, then SIGKILL after kill_timeout: keep
// kill_timeout above the runner's stop budget (--stop-timeout, 8 s by default).
module.exports = {
  apps: [
    {
      name: "agent-relay-runner-echo",
      script: "deno",
      args: [
        "task",
        "--quiet",
        "start",
        "run",
        "--agent-id",
        "echo",
        "--provider",
        "command",
        "--log-file",
        "-",
        "--log-format",
        "json",
        "--stop-timeout",
        "8",
        "--",
        "./examples/echo-agent",
      ],
      cwd: __dirname + "/../..",
      interpreter: "none",
      env: {
        AGENT_RELAY_URL: "http://127.0.0.1:8787",
        AGENT_RELAY_TOKEN_FILE: process.env.AGENT_RELAY_TOKEN_FILE ?? "/etc/agent-relay/token",
      },
      kill_timeout: 15000,
      autorestart: true,
      // Exit 2 is bad usage: restarting cannot help.
      stop_exit_codes: [0, 2],
      restart_delay: 5000,
    },
  ],
};
