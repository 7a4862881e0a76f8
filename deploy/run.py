"""`make run`: the whole platform in embedded mode, with demo data, until Ctrl-C."""
from __future__ import annotations

import os
import secrets
import signal
import sys
import time

from deploy.demo import DemoLoader
from shared.embedded import Stack


def main() -> int:
    port = int(os.environ.get("GATEWAY_PORT", "8080"))
    admin_token = "vt_admin_" + secrets.token_urlsafe(24)
    stack = Stack(gateway_port=port, extra_env={"VOICES_ADMIN_TOKEN": admin_token})
    print("Starting the embedded broker, three services and the gateway ...", flush=True)
    started = time.monotonic()
    try:
        stack.start(timeout=60)
    except Exception as exc:
        print(f"Could not start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print(f"All services ready in {time.monotonic() - started:.1f}s.", flush=True)
    try:
        demo = DemoLoader(stack.gateway_url, admin_token).load()
    except Exception as exc:
        print(f"Could not load the demo data: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print(f"""
Voices is running in EMBEDDED mode: everything is kept in memory and lost when you stop it.

  Gateway (API):      {stack.gateway_url}/api/v1/...
  Health:             {stack.gateway_url}/healthz
  API docs:           {stack.gateway_url}/docs
  Participant link:   {stack.gateway_url}/i/{demo['invitation_code']}
  Demo consultation:  {demo['consultation_id']}

API tokens (send as 'Authorization: Bearer <token>'):
  admin      {admin_token}
  organiser  {demo['organiser_token']}
  policy     {demo['policy_token']}
  auditor    {demo['auditor_token']}

Logs: {stack.log_dir}
Press Ctrl-C to stop.
""", flush=True)
    stopping = {"now": False}

    def _stop(*_args):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("Stopping ...", flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
