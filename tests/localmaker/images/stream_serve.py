"""A serving image for localmaker's streaming and asynchronous inference tests (needs no model).

POST /invocations, by the request body:
  stream:N:DELAY  N chunks ``part-i\\n`` with chunked transfer encoding, DELAY seconds apart
  break:N         N chunks, then the connection is closed without the terminating chunk
  plain           one JSON answer with a Content-Length (a container that does not stream)
  fail            500 with a JSON body
  sleep:S         sleeps S seconds, then answers JSON describing the request and the highest
                  number of requests this process had in flight at once
Responses echo X-Amzn-SageMaker-Custom-Attributes as ``echo:<value>``.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"inflight": 0, "max_inflight": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _headers(self, status, ctype, length=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        if self.headers.get("X-Amzn-SageMaker-Custom-Attributes"):
            self.send_header("X-Amzn-SageMaker-Custom-Attributes", "echo:" + self.headers["X-Amzn-SageMaker-Custom-Attributes"])
        self.end_headers()

    def _send(self, status, data, ctype="application/json"):
        self._headers(status, ctype, len(data))
        self.wfile.write(data)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/ping":
            return self._send(200, b"")
        self._send(404, b"not found", "text/plain")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        if body.startswith("stream:"):
            _, n, delay = body.split(":")
            self._headers(200, "text/plain")
            for i in range(int(n)):
                if i:
                    time.sleep(float(delay))
                self._chunk(f"part-{i}\n".encode())
            self.wfile.write(b"0\r\n\r\n")
            return
        if body.startswith("break:"):
            self._headers(200, "text/plain")
            for i in range(int(body.split(":")[1])):
                self._chunk(f"part-{i}\n".encode())
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if body == "plain":
            return self._send(200, b'{"streamed": false}')
        if body == "fail":
            return self._send(500, b'{"message": "the model failed on this input"}')
        if body.startswith("sleep:"):
            with lock:
                state["inflight"] += 1
                state["max_inflight"] = max(state["max_inflight"], state["inflight"])
            try:
                time.sleep(float(body.split(":")[1]))
            finally:
                with lock:
                    state["inflight"] -= 1
            doc = {"content_type": self.headers.get("Content-Type", ""), "accept": self.headers.get("Accept", ""),
                   "inference_id": self.headers.get("X-Amzn-SageMaker-Inference-Id", ""),
                   "max_inflight": state["max_inflight"], "pid": os.getpid(), "done": time.time()}
            return self._send(200, json.dumps(doc).encode())
        self._send(400, f"unknown request {body[:40]!r}".encode(), "text/plain")


port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
print("stream serve listening on", port, flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
