"""A tiny training image for localmaker's tests: reads its channel, writes a model, prints metrics.

Behaviour is chosen by the ``mode`` hyperparameter so one image covers every training path.
"""

import json
import os
import signal
import sys
import time

base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
hps = json.load(open(os.path.join(base, "input/config/hyperparameters.json")))
rc = json.load(open(os.path.join(base, "input/config/resourceconfig.json")))
mode = hps.get("mode", "ok")
model_dir = os.environ.get("SM_MODEL_DIR", os.path.join(base, "model"))
failure = os.path.join(base, "output/failure")


def files_of(channel):
    root = os.path.join(base, "input/data", channel)
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def save(extra=None):
    train = files_of("train")
    lines = 0
    for f in train:
        with open(os.path.join(base, "input/data/train", f)) as fh:
            lines += sum(1 for _ in fh)
    doc = {"host": rc["current_host"], "hosts": rc["hosts"], "files": train, "lines": lines,
           "hps": hps, "env_has_real_creds": os.environ.get("AWS_SECRET_ACCESS_KEY") not in (None, "localmaker"),
           "addresses": os.environ.get("TRAINING_HOST_ADDRESSES")}
    doc.update(extra or {})
    with open(os.path.join(model_dir, "model.json"), "w") as fh:
        json.dump(doc, fh)
    os.makedirs(os.path.join(base, "output/data"), exist_ok=True)
    with open(os.path.join(base, "output/data/report.txt"), "w") as fh:
        fh.write(f"lines={lines}\n")
    return doc


print("tiny-algo starting on", rc["current_host"], "mode", mode, flush=True)
if mode == "fail":
    with open(failure, "w") as fh:
        fh.write("bad input: column 'x' is not numeric in train/data.csv row 7")
    print("failing on purpose", flush=True)
    sys.exit(3)
if mode == "crash":
    sys.exit(5)
if mode == "sleep":
    def on_term(*_):
        print("got SIGTERM, saving checkpoint", flush=True)
        save({"interrupted": True})
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    for _ in range(int(hps.get("seconds", "60")) * 10):
        time.sleep(0.1)
    save()
    sys.exit(0)
doc = save()
for epoch in range(1, 4):
    print(f"epoch={epoch} train:loss={1.0 / epoch:.4f} validation:rmse={0.5 / epoch:.4f}", flush=True)
print(f"lines={doc['lines']} files={len(doc['files'])}", flush=True)
