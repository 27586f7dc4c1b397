"""A training program that does nothing but honour the contract: the floor of a job's cost."""

import os

model_dir = os.environ.get("SM_MODEL_DIR", os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "model"))
with open(os.path.join(model_dir, "model.txt"), "w") as fh:
    fh.write("noop\n")
print("noop training done", flush=True)
