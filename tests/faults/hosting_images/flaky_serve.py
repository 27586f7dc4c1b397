"""A serve program whose health is scripted per start, for the hosting fault tests.

Every start of one instance (its SAGEMAKER_BASE_DIR) is numbered from 1 and recorded in
``$FLAKY_STATE/<instance dir name>/start-<n>.json`` (pid, start time, and the time it began to listen).
``FLAKY_HEALTHY_STARTS`` lists the starts that pass ``GET /ping`` ("all", or e.g. "1,4"); every other
start listens but answers /ping 503 forever. ``FLAKY_START_DELAY`` seconds pass before it listens.
``POST /invocations`` answers ``{"pid", "start"}`` after sleeping ``FLAKY_INVOKE_SECONDS``.
"""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

started = time.time()
base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
state = Path(os.environ["FLAKY_STATE"]) / base.name
state.mkdir(parents=True, exist_ok=True)
start = len(list(state.glob("start-*.json"))) + 1
wanted = os.environ.get("FLAKY_HEALTHY_STARTS", "all")
healthy = wanted == "all" or str(start) in wanted.split(",")
record = state / f"start-{start}.json"
record.write_text(json.dumps({"pid": os.getpid(), "started": started, "healthy": healthy}))
print(f"flaky serve start #{start} (pid {os.getpid()}, healthy={healthy})", flush=True)
time.sleep(float(os.environ.get("FLAKY_START_DELAY", "0")))
invoke_seconds = float(os.environ.get("FLAKY_INVOKE_SECONDS", "0"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/ping":
            return self._send(200 if healthy else 503, "" if healthy else "never healthy", "text/plain")
        self._send(404, "not found", "text/plain")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if invoke_seconds:
            time.sleep(invoke_seconds)
        self._send(200, json.dumps({"pid": os.getpid(), "start": start}))


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))), Handler)
record.write_text(json.dumps({"pid": os.getpid(), "started": started, "healthy": healthy, "listening": time.time()}))
server.serve_forever()
