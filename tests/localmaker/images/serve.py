"""A tiny serving image for localmaker's tests: answers /ping and /invocations from its model dir."""

import json
import os
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
model_dir = os.environ.get("SM_MODEL_DIR", os.path.join(base, "model"))
with open(os.path.join(model_dir, "model.json")) as fh:
    MODEL = json.load(fh)
print("tiny serve loaded model from", model_dir, flush=True)
if MODEL.get("hps", {}).get("serve_fails") == "true":
    print("model is unservable", flush=True)
    sys.exit(4)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json", extra=None):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/ping":
            return self._send(200, "")
        if self.path == "/execution-parameters":
            return self._send(200, json.dumps({"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}))
        self._send(404, "not found")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if body.startswith(b"error400"):
            return self._send(400, "row 3, column 2: not a number", "text/plain")
        if body.startswith(b"error500"):
            return self._send(500, "model exploded", "text/plain")
        if body.startswith(b"crash"):
            os._exit(1)
        if body.startswith(b"sleep"):
            time.sleep(float(body.split()[1]))
        ctype = self.headers.get("Content-Type", "")
        accept = self.headers.get("Accept", "")
        extra = {}
        if self.headers.get("X-Amzn-SageMaker-Custom-Attributes"):
            extra["X-Amzn-SageMaker-Custom-Attributes"] = "echo:" + self.headers["X-Amzn-SageMaker-Custom-Attributes"]
        if ctype == "text/csv":
            rows = [r for r in body.decode().splitlines() if r.strip()]
            sums = []
            for i, r in enumerate(rows, start=1):
                try:
                    sums.append(str(sum(float(x) for x in r.split(","))))
                except ValueError:
                    return self._send(400, f"row {i}: {r!r} is not numeric", "text/plain")
            return self._send(200, "\n".join(sums) + "\n", "text/csv", extra)
        if ctype == "application/x-recordio-protobuf":
            lengths, pos = [], 0
            while pos < len(body):
                magic, lrec = struct.unpack_from("<II", body, pos)
                assert magic == 0xCED7230A
                n = lrec & ((1 << 29) - 1)
                lengths.append(str(n))
                pos += 8 + n + (4 - n % 4) % 4
            return self._send(200, "\n".join(lengths) + "\n", "text/csv", extra)
        self._send(200, json.dumps({"lines": MODEL["lines"], "host": MODEL["host"], "n": len(body), "accept": accept,
                                     "pid": os.getpid()}), "application/json", extra)


port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
