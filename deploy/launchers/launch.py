#!/usr/bin/env python3
"""A minimal orchestrator for one runner (see docs/deploy.md): spawn it, wait until GET /ready
answers 200 on the port from its runner-info file, then stop it with SIGTERM when this launcher
gets SIGTERM or SIGINT (or at once with LAUNCH_ONCE=1), and exit with its exit code.
  python3 launch.py INFO_FILE COMMAND [ARGS...]
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime

if len(sys.argv) < 3:
    print("usage: python3 launch.py INFO_FILE COMMAND [ARGS...]", file=sys.stderr)
    sys.exit(2)
info_file, command = sys.argv[1], sys.argv[2:]
timeout_s = float(os.environ.get("LAUNCH_READY_TIMEOUT_S", "60"))

spawned_at = time.time()
child = subprocess.Popen(command, stdin=subprocess.DEVNULL)


def stop(*_):
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)


def read_info():
    """The runner-info file of this start (not a stale one): its startedAt is after the spawn."""
    try:
        with open(info_file) as f:
            info = json.load(f)
        started = datetime.fromisoformat(info["startedAt"].replace("Z", "+00:00")).timestamp()
        return info if started >= spawned_at - 1 else None
    except (OSError, ValueError, KeyError):
        return None


def wait_ready():
    last_reason = None
    while time.time() - spawned_at < timeout_s and child.poll() is None:
        info = read_info()
        if info:
            url = f"http://127.0.0.1:{info['controlPort']}/ready"
            try:
                with urllib.request.urlopen(url, timeout=2) as res:
                    return info
            except urllib.error.HTTPError as error:  # 503 {ready: false, reason}
                reason = json.loads(error.read() or b"{}").get("reason")
                if reason != last_reason:
                    print(f"not ready yet: {reason}", flush=True)
                    last_reason = reason
            except (OSError, ValueError):
                pass  # The control server is not listening yet.
        time.sleep(0.1)
    return None


info = wait_ready()
if info:
    print(f"ready: agent {info['agentId']}, runner pid {info['pid']}, port {info['controlPort']}",
          flush=True)
    if os.environ.get("LAUNCH_ONCE") == "1":
        stop()
elif child.poll() is None:
    print(f"not ready within {timeout_s:g} s: stopping it", flush=True)
    stop()
code = child.wait()
code = code if code >= 0 else 128 - code  # killed by a signal
print(f"runner exited with code {code}", flush=True)
sys.exit(code if info else (code or 1))
