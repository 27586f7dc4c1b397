"""A tiny processing image for localmaker's tests: counts input lines, reports what it was given.

Usage (ContainerArguments): --mode ok|fail|crash|sleep --input DIR --output DIR [--seconds N]
Paths arrive as the container would see them (/opt/ml/...), rewritten by localmaker to the host's base.
"""

import argparse
import json
import os
import signal
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--mode", default="ok")
ap.add_argument("--input", default="/opt/ml/processing/input/data")
ap.add_argument("--output", default="/opt/ml/processing/output/report")
ap.add_argument("--seconds", type=float, default=60)
args = ap.parse_args()

base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
rc = json.load(open(os.path.join(base, "config/resourceconfig.json")))
cfg = json.load(open(os.path.join(base, "config/processingjobconfig.json")))
host = rc["current_host"]
print("proc-algo starting on", host, "mode", args.mode, flush=True)


def files_of(root):
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def report(extra=None):
    files = files_of(args.input)
    lines = 0
    for f in files:
        with open(os.path.join(args.input, f)) as fh:
            lines += sum(1 for _ in fh)
    doc = {
        "host": host, "hosts": rc["hosts"], "files": files, "lines": lines, "argv": sys.argv[1:],
        "cwd": os.getcwd(), "base": base, "job_name": os.environ.get("PROCESSING_JOB_NAME"),
        "config_name": cfg["ProcessingJobName"], "config_args": cfg["AppSpecification"].get("ContainerArguments"),
        "env_path": os.environ.get("MY_DATA_PATH"), "env_plain": os.environ.get("MY_PLAIN"),
        "proc_algo_env": os.environ.get("PROC_ALGO"),
        "env_has_real_creds": os.environ.get("AWS_SECRET_ACCESS_KEY") not in (None, "localmaker"),
    }
    doc.update(extra or {})
    os.makedirs(os.path.join(args.output, "nested"), exist_ok=True)
    with open(os.path.join(args.output, f"report-{host}.json"), "w") as fh:
        json.dump(doc, fh)
    with open(os.path.join(args.output, "nested", "lines.txt"), "w") as fh:
        fh.write(f"{lines}\n")
    return doc


if args.mode == "fail":
    with open(os.path.join(base, "output/message"), "w") as fh:
        fh.write("validation failed: 3 rows have a negative price")
    print("failing on purpose", flush=True)
    sys.exit(2)
if args.mode == "crash":
    sys.exit(4)
if args.mode == "sleep":
    def on_term(*_):
        print("got SIGTERM, writing partial report", flush=True)
        report({"interrupted": True})
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    report()
    sys.exit(0)
doc = report()
with open(os.path.join(base, "output/message"), "w") as fh:
    fh.write(f"processed {doc['lines']} lines")
print(f"lines={doc['lines']} files={len(doc['files'])}", flush=True)
