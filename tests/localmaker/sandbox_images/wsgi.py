# The predictor behind gunicorn (a plain WSGI app standing in for the example's Flask one): reads the
# model from /opt/ml/model, answers /ping and text/csv /invocations. Each instance names itself with an
# id kept in its /tmp, so a test can tell instances apart (and see that /tmp is not shared).
import json
import os
import socket
import uuid

MODEL_PATH = "/opt/ml/model/model.json"
ID_PATH = "/tmp/instance-id"


def instance_id():
    if not os.path.exists(ID_PATH):
        with open(ID_PATH, "w") as fh:
            fh.write(uuid.uuid4().hex)
    return open(ID_PATH).read()


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/ping":
        healthy = os.path.exists(MODEL_PATH)
        start_response("200 OK" if healthy else "404 Not Found", [("Content-Type", "application/json")])
        return [b"\n"]
    if path == "/invocations":
        if environ.get("CONTENT_TYPE") != "text/csv":
            start_response("415 Unsupported Media Type", [("Content-Type", "text/plain")])
            return [b"This predictor only supports CSV data"]
        mean = json.load(open(MODEL_PATH))["mean"]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
        me = f"{instance_id()},{socket.gethostname()}"
        out = [f"{float(line.split(',')[0]) + mean},{me}" for line in body.splitlines() if line.strip()]
        start_response("200 OK", [("Content-Type", "text/csv")])
        return [("\n".join(out) + "\n").encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"{}"]
