"""A tiny training image for tuning tests: its metric is a known function of its hyperparameters.

    validation:rmse = (x - 3)^2 + 10 * (lr - 0.1)^2 + (0 if opt == "adam" else 1)

Defaults (x=10, lr=1.0, opt=sgd) are poor on purpose (58.1). opt=broken exits 1 with a failure
file; opt=nometric completes without printing the metric. ``sleep`` (seconds) stretches the run.
"""

import json
import os
import sys
import time

base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
hps = json.load(open(os.path.join(base, "input/config/hyperparameters.json")))
x = float(hps.get("x", "10"))
lr = float(hps.get("lr", "1.0"))
opt = hps.get("opt", "sgd")
time.sleep(float(hps.get("sleep", "0")))
if opt == "broken":
    with open(os.path.join(base, "output/failure"), "w") as fh:
        fh.write(f"optimizer 'broken' diverged at x={x:g}")
    sys.exit(1)
with open(os.path.join(base, "model/model.json"), "w") as fh:
    json.dump({"hps": hps}, fh)
if opt == "nometric":
    print("trained, but no validation metric this time", flush=True)
    sys.exit(0)
rmse = (x - 3) ** 2 + 10 * (lr - 0.1) ** 2 + (0 if opt == "adam" else 1)
print(f"train:loss={rmse * 1.1:.6f}", flush=True)
print(f"validation:rmse={rmse:.6f}", flush=True)
