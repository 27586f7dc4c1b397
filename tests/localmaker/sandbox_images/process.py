# A processing script the way SKLearnProcessor users write them: hard-coded /opt/ml/processing paths.
import json
import os
import socket

rows = [line.strip().split(",") for line in open("/opt/ml/processing/input/data/train.csv") if line.strip()]
os.makedirs("/opt/ml/processing/output/summary", exist_ok=True)
with open("/opt/ml/processing/output/summary/summary.json", "w") as fh:
    json.dump({"rows": len(rows), "total": sum(float(r[0]) for r in rows), "cwd": os.getcwd(),
               "hostname": socket.gethostname(),
               "config": json.load(open("/opt/ml/config/resourceconfig.json"))}, fh)
print("processed", len(rows), "rows")
