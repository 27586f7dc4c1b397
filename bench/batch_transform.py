"""Batch transform through localmaker vs. the same model in-process, on the same 100k rows.

In-process: the container's own code path per 6 MB request body (CSV decode, forward pass, CSV
encode), no HTTP. Through localmaker: a real CreateTransformJob (SplitType Line, MultiRecord,
6 MB payloads) against the image's gunicorn server, once plain and once with the id joined back
(DataProcessing InputFilter/JoinSource/OutputFilter). Reported both end to end (including the
serve process's start, which loads TensorFlow) and for the scoring phase alone (from reading the
first object to the last output written: splitting, filters, requests, join, upload; from the
job's data log). Prints a table, writes bench/results/batch_transform.json.
"""

from __future__ import annotations

import importlib.util
import io
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import save, wait_done  # noqa: E402  (bench/ is the script's own folder on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
spec = importlib.util.spec_from_file_location("serving_bench", HERE / "serving.py")
assert spec is not None and spec.loader is not None
serving = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serving)

N_ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
PAYLOAD = 6 * 1024 * 1024
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


def chunks(lines: list[bytes], limit: int) -> list[bytes]:
    out: list[bytes] = []
    cur: list[bytes] = []
    size = 0
    for line in lines:
        if cur and size + len(line) + 1 > limit:
            out.append(b"\n".join(cur) + b"\n")
            cur, size = [], 0
        cur.append(line)
        size += len(line) + 1
    if cur:
        out.append(b"\n".join(cur) + b"\n")
    return out


def in_process(model_dir: Path, lines: list[bytes]) -> float:
    from dnn_regressor.inference import load_regressor
    from dnn_regressor.payloads import decode_csv, encode

    regressor = load_regressor(model_dir)
    bodies = chunks(lines, PAYLOAD)
    t0 = time.perf_counter()
    n = 0
    for body in bodies:
        out = encode(regressor.predict(decode_csv(body, regressor.feature_names)), "text/csv")
        n += out.count(b"\n")
    assert n == len(lines)
    return len(lines) / (time.perf_counter() - t0)


def transform(server, name: str, data_key: str, join: bool) -> dict[str, float]:
    sm, logs = server.client("sagemaker"), server.client("logs")
    req = {
        "TransformJobName": name,
        "ModelName": "bench-dnn",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "MaxConcurrentTransforms": 2,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://bench/{data_key}"}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": f"s3://bench/out/{name}", "AssembleWith": "Line", "Accept": "text/csv"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    if join:
        req["DataProcessing"] = {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    t0 = time.perf_counter()
    sm.create_transform_job(**req)
    d = wait_done(lambda: sm.describe_transform_job(TransformJobName=name), "TransformJobStatus", 0.2)
    wall = time.perf_counter() - t0
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    group = "/aws/sagemaker/TransformJobs"  # the data log: <job>/<instance-id>-<epoch>/data-log, as on AWS
    [stream] = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{name}/")[
        "logStreams"] if s["logStreamName"].endswith("/data-log")]
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    scoring = (events[-1]["timestamp"] - events[0]["timestamp"]) / 1000
    return {"wall_s": wall, "scoring_s": scoring}


def main() -> None:
    from localmaker.launcher import start

    model_dir, _ = serving.train_model(False)
    rows = serving._rows(N_ROWS, 9)[:, 1:]
    lines = [",".join(f"{v:.6f}" for v in r).encode() for r in rows]
    # Each job is followed at once by an in-process measurement, and its ratio is taken against
    # that one; the run repeats REPEATS times and reports the median ratio with its range (this
    # VM's speed drifts by 2x within seconds, so single measurements flatter or sink a ratio).
    in_process(model_dir, lines)  # warm-up: imports, first-touch allocations
    runs: dict[str, list[dict[str, float]]] = {"transform_plain": [], "transform_join": []}
    with tempfile.TemporaryDirectory() as home:
        server = start(Path(home))
        try:
            s3, sm = server.client("s3"), server.client("sagemaker")
            s3.create_bucket(Bucket="bench")
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                for f in model_dir.iterdir():
                    tar.add(f, arcname=f.name)
            s3.put_object(Bucket="bench", Key="model/model.tar.gz", Body=buf.getvalue())
            s3.put_object(Bucket="bench", Key="plain/data.csv", Body=b"\n".join(lines) + b"\n")
            s3.put_object(Bucket="bench", Key="ids/data.csv",
                          Body=b"\n".join(b"%d," % i + line for i, line in enumerate(lines)) + b"\n")
            sm.create_model(ModelName="bench-dnn", ExecutionRoleArn="arn:aws:iam::123456789012:role/Bench",
                            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/dnn-regressor:latest",
                                              "ModelDataUrl": "s3://bench/model/model.tar.gz",
                                              "Environment": {"MODEL_SERVER_WORKERS": "2"}})
            for i in range(REPEATS):
                for key, prefix, join in (("transform_plain", "plain/", False), ("transform_join", "ids/", True)):
                    job = transform(server, f"bench-{key[10:]}-{i}", prefix, join=join)
                    rate_in = in_process(model_dir, lines)
                    runs[key].append({**job, "in_process_rows_per_s": rate_in,
                                      "ratio_scoring": N_ROWS / job["scoring_s"] / rate_in,
                                      "ratio_wall": N_ROWS / job["wall_s"] / rate_in})
        finally:
            server.stop()
    results: dict[str, Any] = {"rows": N_ROWS, "repeats": REPEATS}
    for key, found in runs.items():
        scoring = sorted(r["ratio_scoring"] for r in found)
        wall = sorted(r["ratio_wall"] for r in found)
        results[key] = {
            "runs": found,
            "ratio_scoring_median": float(statistics.median(scoring)),
            "ratio_scoring_min": scoring[0],
            "ratio_scoring_max": scoring[-1],
            "ratio_wall_median": float(statistics.median(wall)),
            "serve_start_s_median": float(statistics.median(r["wall_s"] - r["scoring_s"] for r in found)),
        }
    rates = [r["in_process_rows_per_s"] for found in runs.values() for r in found]
    print(f"in-process (decode + forward + encode): {min(rates):,.0f}-{max(rates):,.0f} rows/s over {len(rates)} runs")
    print(f"{'ratio to the in-process run right after the job':<58}{'median':>8}{'range':>16}")
    for key, label in (("transform_plain", "transform, plain"), ("transform_join", "transform, id joined")):
        r = results[key]
        print(f"{label + ', scoring phase':<58}{r['ratio_scoring_median']:>8.2f}"
              f"{r['ratio_scoring_min']:>8.2f}-{r['ratio_scoring_max']:.2f}")
        print(f"{label + ', end to end (serve start ' + format(r['serve_start_s_median'], '.1f') + ' s)':<58}"
              f"{r['ratio_wall_median']:>8.2f}")
    save("batch_transform", results)


if __name__ == "__main__":
    main()
