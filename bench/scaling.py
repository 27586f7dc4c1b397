"""Scaling: the pipeline's ETL, a training job and a batch transform at growing row counts, and
data capture under many requests, against localmaker; time per row and peak memory.

For each size in BENCH_ROWS (default 10000,100000,1000000) a fresh localmaker is started (via
localmaker/launcher.py) and a synthetic data set with the diabetes schema
(include/config/models/diabetes_dnn.yaml: 10 numeric features + target, values inside the schema's
ranges) is generated on disk. Then, with the project's own code and request builders:

* ETL: ``mlpipeline.etl.run_etl`` in a subprocess (as the Airflow task runs it), reading the CSV
  from ``file://`` and uploading the channels to localmaker's S3. Its peak RSS comes from
  ``os.wait4``'s rusage of that subprocess.
* training: ``training_job_request`` with the DNN regressor image, epochs=1 (BENCH_EPOCHS) and a
  larger batch (BENCH_BATCH_SIZE) so 1M rows finish in minutes.
* batch transform: ``batch_transform_request`` (id joined back) over N ``id,features`` rows
  uploaded to S3.

Then, once (on the first size's server): an endpoint with the pipeline's DataCaptureConfig,
BENCH_CAPTURE_REQUESTS (default 10000) one-row invocations, and the capture records counted in S3.

During each phase a sampler reads /proc every BENCH_SAMPLE_S seconds: localmaker's own RSS and,
separately, the summed RSS of all its descendants (serve/train processes). Prints a table, writes
bench/results/scaling.json. Targets: per-row cost from the second-largest to the largest size
within 1.3x (both the plain per-row figure, which includes fixed costs, and the marginal cost
between consecutive sizes); localmaker's RSS does not grow with the data it stores or streams; ETL RSS bounded by
its chunk size (flat across sizes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import save  # noqa: E402  (bench/ is the script's own folder on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "include"))

SIZES = [int(s) for s in os.environ.get("BENCH_ROWS", "10000,100000,1000000").split(",") if s.strip()]
EPOCHS = int(os.environ.get("BENCH_EPOCHS", "1"))
BATCH_SIZE = int(os.environ.get("BENCH_BATCH_SIZE", "512"))
CAPTURE_REQUESTS = int(os.environ.get("BENCH_CAPTURE_REQUESTS", "10000"))
SAMPLE_S = float(os.environ.get("BENCH_SAMPLE_S", "0.2"))
MODEL, STAGE = "diabetes_dnn", "dev"
TS = "20261206T120000"
PAGE = os.sysconf("SC_PAGE_SIZE")

# ETL as the Airflow task runs it, in its own process so its peak RSS is its own.
ETL_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1] + "/include")
import boto3
from mlpipeline.config import load_config
from mlpipeline.etl import run_etl
from mlpipeline.run import RunContext
url, source, run_id = sys.argv[2], sys.argv[3], sys.argv[4]
cfg = load_config("diabetes_dnn", "dev")
ctx = RunContext(model=cfg.model, stage=cfg.stage, run_id=run_id, ts_nodash=sys.argv[5])
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id="localmaker", aws_secret_access_key="localmaker")
res = run_etl(cfg, ctx, s3_client=s3, source_uri=source)
print(json.dumps(res.to_dict()))
"""


# ------------------------------------------------------------------------------------ memory


def _rss(pid: int) -> int:
    """Resident set size in bytes (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class Sampler:
    """Peak RSS of a process and (summed) of its descendants while a phase runs."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_self = self.peak_children = self.peak_one_child = 0
        self.start_self = _rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        self.peak_self = max(self.peak_self, _rss(self.pid))
        kids = [_rss(p) for p in _descendants(self.pid)]
        self.peak_children = max(self.peak_children, sum(kids))
        self.peak_one_child = max(self.peak_one_child, max(kids, default=0))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.end_self = _rss(self.pid)

    def result(self) -> dict[str, float]:
        mb = 1024 * 1024
        return {"localmaker_start_mb": self.start_self / mb, "localmaker_peak_mb": self.peak_self / mb,
                "localmaker_end_mb": self.end_self / mb, "children_peak_mb": self.peak_children / mb,
                "largest_child_peak_mb": self.peak_one_child / mb}


# ------------------------------------------------------------------------------------ data


def write_data(directory: Path, n: int, seed: int) -> tuple[Path, Path]:
    """``n`` rows of the diabetes schema (header, label last as in include/data/diabetes.csv) and
    ``n`` batch rows ``id,features`` (no header, as ``prepare_batch_input`` writes them), written in blocks so generation stays small."""
    import numpy as np

    rng = np.random.default_rng(seed)
    train, batch = directory / "diabetes.csv", directory / "batch.csv"
    features = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6"
    with open(train, "w") as ft, open(batch, "w") as fb:
        ft.write(features + ",target\n")
        done = 0
        while done < n:
            m = min(100_000, n - done)
            age = rng.integers(19, 80, m)
            sex = rng.integers(1, 3, m)
            bmi = rng.uniform(18, 42, m)
            bp = rng.uniform(62, 133, m)
            s1 = rng.integers(97, 301, m)
            s2 = rng.uniform(41, 242, m)
            s3 = rng.uniform(22, 99, m)
            s4 = rng.uniform(2, 9, m)
            s5 = rng.uniform(3.2, 6.1, m)
            s6 = rng.integers(58, 124, m)
            target = np.clip(25 + 6 * (bmi - 18) + 0.5 * (bp - 62) + 30 * (s5 - 3.2) + rng.normal(0, 30, m), 0, 500)
            for i in range(m):
                row = (f"{age[i]},{sex[i]},{bmi[i]:.1f},{bp[i]:.2f},{s1[i]},{s2[i]:.1f},{s3[i]:.1f},"
                       f"{s4[i]:.2f},{s5[i]:.4f},{s6[i]}")
                ft.write(f"{row},{target[i]:.1f}\n")
                fb.write(f"{done + i},{row}\n")
            done += m
    return train, batch


# ------------------------------------------------------------------------------------ phases


def wait_job(describe: Any, status_key: str, timeout: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = describe()
        if d[status_key] not in ("InProgress", "Stopping", "Creating", "Updating"):
            return d
        time.sleep(0.5)
    raise TimeoutError(status_key)


def run_size(n: int, home: Path, work: Path, capture: bool) -> dict[str, Any]:
    from mlpipeline import sagemaker_requests as rq
    from mlpipeline.config import load_config
    from mlpipeline.run import RunContext

    from localmaker.launcher import start

    cfg = load_config(MODEL, STAGE)
    t0 = time.perf_counter()
    source, batch = write_data(work, n, seed=n)
    print(f"[{n:,} rows] data written in {time.perf_counter() - t0:.1f} s "
          f"({source.stat().st_size / 1e6:.0f} MB + {batch.stat().st_size / 1e6:.0f} MB)", flush=True)
    server = start(home)
    out: dict[str, Any] = {"rows": n, "chunk_size": cfg.data.chunk_size}
    try:
        lm = server.proc.pid
        s3, sm = server.client("s3"), server.client("sagemaker")
        s3.create_bucket(Bucket=cfg.aws.bucket)
        out["localmaker_idle_mb"] = _rss(lm) / 2**20
        run_id = f"scaling-{n}"
        ctx = RunContext(model=cfg.model, stage=cfg.stage, run_id=run_id, ts_nodash=TS)

        # ETL in a subprocess; its own peak RSS from wait4
        with Sampler(lm) as smp:
            t = time.perf_counter()
            with open(work / "etl.out", "w+") as fo, open(work / "etl.err", "w+") as fe:
                proc = subprocess.Popen([sys.executable, "-c", ETL_CHILD, str(ROOT), server.url,
                                         f"file://{source}", run_id, TS], stdout=fo, stderr=fe,
                                        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
                _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss: peak RSS)
                proc.returncode = os.waitstatus_to_exitcode(status)
                elapsed = time.perf_counter() - t
                fo.seek(0)
                fe.seek(0)
                stdout, stderr = fo.read(), fe.read()
        if proc.returncode != 0:
            raise SystemExit(f"ETL failed:\n{stderr}")
        etl = json.loads(stdout.strip().splitlines()[-1])
        out["etl"] = {"s": elapsed, "us_per_row": elapsed / n * 1e6, "rows": n, "channel_rows": etl["rows"],
                      "peak_rss_mb": usage.ru_maxrss / 1024, **smp.result()}
        print(f"[{n:,} rows] ETL {elapsed:.1f} s {etl['rows']}", flush=True)
        ctx = ctx.with_data(etl["channels"])

        # training
        req = rq.training_job_request(cfg, ctx, hyperparameters={"epochs": EPOCHS, "batch_size": BATCH_SIZE})
        with Sampler(lm) as smp:
            t = time.perf_counter()
            sm.create_training_job(**req)
            d = wait_job(lambda: sm.describe_training_job(TrainingJobName=req["TrainingJobName"]), "TrainingJobStatus")
            elapsed = time.perf_counter() - t
        if d["TrainingJobStatus"] != "Completed":
            raise SystemExit(f"training failed: {d.get('FailureReason')}")
        train_rows = etl["rows"]["train"]
        out["train"] = {"s": elapsed, "rows": train_rows, "us_per_row": elapsed / train_rows * 1e6,
                        "epochs": EPOCHS, "batch_size": BATCH_SIZE, **smp.result()}
        print(f"[{n:,} rows] training {elapsed:.1f} s", flush=True)

        # batch transform of n id,features rows (id joined back)
        mreq = rq.model_request(cfg, ctx, d["ModelArtifacts"]["S3ModelArtifacts"])
        sm.create_model(**mreq)
        batch_uri = f"s3://{cfg.aws.bucket}/{cfg.model}/{ctx.run_key}/scaling_batch/"
        s3.upload_file(str(batch), cfg.aws.bucket, f"{cfg.model}/{ctx.run_key}/scaling_batch/data.csv")
        out["localmaker_after_upload_mb"] = _rss(lm) / 2**20
        treq = rq.batch_transform_request(cfg, ctx, model=mreq["ModelName"], input_uri=batch_uri,
                                          output_path=rq.run_output_uri(cfg, ctx, "scaling_batch_out"))
        treq["TransformInput"]["ContentType"] = "text/csv"
        with Sampler(lm) as smp:
            t = time.perf_counter()
            sm.create_transform_job(**treq)
            d = wait_job(lambda: sm.describe_transform_job(TransformJobName=treq["TransformJobName"]),
                         "TransformJobStatus")
            elapsed = time.perf_counter() - t
        if d["TransformJobStatus"] != "Completed":
            raise SystemExit(f"transform failed: {d.get('FailureReason')}")
        out["transform"] = {"s": elapsed, "rows": n, "us_per_row": elapsed / n * 1e6, **smp.result()}
        print(f"[{n:,} rows] transform {elapsed:.1f} s", flush=True)

        if capture:
            out["capture"] = run_capture(server, cfg, ctx, mreq["ModelName"], source)
        out["localmaker_end_mb"] = _rss(lm) / 2**20
    finally:
        server.stop()
    return out


def run_capture(server: Any, cfg: Any, ctx: Any, model: str, source: Path) -> dict[str, Any]:
    from mlpipeline import sagemaker_requests as rq

    sm, s3, rt = server.client("sagemaker"), server.client("s3"), server.client("sagemaker-runtime")
    ecfg = rq.endpoint_config_request(cfg, ctx, model)
    sm.create_endpoint_config(**ecfg)
    ereq = rq.endpoint_request(cfg, ctx)
    sm.create_endpoint(**ereq)
    name = ereq["EndpointName"]
    d = wait_job(lambda: sm.describe_endpoint(EndpointName=name), "EndpointStatus", timeout=300)
    if d["EndpointStatus"] != "InService":
        raise SystemExit(f"endpoint failed: {d.get('FailureReason')}")
    with open(source) as fh:
        next(fh)
        bodies = [",".join(next(fh).split(",")[:-1]) + "\n" for _ in range(1000)]
    lm = server.proc.pid
    dest = rq.data_capture_config(cfg)["DestinationS3Uri"]
    bucket, _, prefix = dest[len("s3://"):].partition("/")
    with Sampler(lm) as smp:
        t = time.perf_counter()
        for i in range(CAPTURE_REQUESTS):
            rt.invoke_endpoint(EndpointName=name, Body=bodies[i % len(bodies)].encode(), ContentType="text/csv",
                               Accept="text/csv")
        elapsed = time.perf_counter() - t
        records, files, deadline = 0, 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            records = files = 0
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/{name}/"):
                for obj in page.get("Contents", []):
                    files += 1
                    records += s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().count(b"\n")
            if records >= CAPTURE_REQUESTS:
                break
            time.sleep(1)
    print(f"capture: {CAPTURE_REQUESTS} requests in {elapsed:.1f} s, {records} records in {files} files", flush=True)
    return {"requests": CAPTURE_REQUESTS, "s": elapsed, "us_per_request": elapsed / CAPTURE_REQUESTS * 1e6,
            "records": records, "files": files, **smp.result()}


def main() -> None:
    results: dict[str, Any] = {"sizes": SIZES, "epochs": EPOCHS, "batch_size": BATCH_SIZE, "runs": []}
    for i, n in enumerate(SIZES):
        with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
            (Path(tmp) / "work").mkdir()
            results["runs"].append(run_size(n, Path(tmp) / "home", Path(tmp) / "work", capture=i == 0))
    runs = results["runs"]
    print()
    print(f"{'phase':<10}{'rows':>10}{'s':>8}{'us/row':>9}{'task peak MB':>14}{'lm start':>10}{'lm peak':>9}"
          f"{'lm end':>8}{'children MB':>13}")
    for r in runs:
        for phase in ("etl", "train", "transform"):
            p = r[phase]
            task = p["peak_rss_mb"] if phase == "etl" else p["largest_child_peak_mb"]
            print(f"{phase:<10}{p['rows']:>10,}{p['s']:>8.1f}{p['us_per_row']:>9.1f}"
                  f"{task:>14.0f}{p['localmaker_start_mb']:>10.0f}{p['localmaker_peak_mb']:>9.0f}"
                  f"{p['localmaker_end_mb']:>8.0f}{p['children_peak_mb']:>13.0f}")
    print("localmaker RSS (MB) per size: idle after start / after the batch input's upload / at the end: "
          + "; ".join(f"{r['rows']:,}: {r['localmaker_idle_mb']:.0f} / {r['localmaker_after_upload_mb']:.0f} / "
                      f"{r['localmaker_end_mb']:.0f}" for r in runs))
    cap = runs[0].get("capture")
    if cap:
        print(f"{'capture':<10}{cap['requests']:>10,}{cap['s']:>8.1f}{cap['us_per_request']:>9.1f}{'':>14}"
              f"{cap['localmaker_start_mb']:>10.0f}{cap['localmaker_peak_mb']:>9.0f}{cap['localmaker_end_mb']:>8.0f}"
              f"{cap['children_peak_mb']:>13.0f}   records written: {cap['records']} in {cap['files']} files")
    checks: dict[str, Any] = {}
    if len(runs) >= 2:
        a, b = runs[-2], runs[-1]
        for phase in ("etl", "train", "transform"):
            ratio = b[phase]["us_per_row"] / a[phase]["us_per_row"]
            checks[f"{phase}_per_row_ratio_{a['rows']}_to_{b['rows']}"] = {"ratio": ratio, "target": 1.3,
                                                                           "met": ratio <= 1.3}
        # The per-row figures above include each phase's fixed cost (process start, TensorFlow's import,
        # job setup), which flatters the larger size; the marginal cost between consecutive sizes,
        # (s_b - s_a) / (rows_b - rows_a), is the per-row cost proper. Its target: the last step's
        # marginal cost within 1.3x of the step before it.
        print()
        print(f"{'marginal us/row':<18}" + "".join(f"{f'{x[0]:,}->{x[1]:,}':>22}" for x in zip(SIZES, SIZES[1:], strict=False)))
        for phase in ("etl", "train", "transform"):
            marginal = [(q[phase]["s"] - p[phase]["s"]) / (q[phase]["rows"] - p[phase]["rows"]) * 1e6
                        for p, q in zip(runs, runs[1:], strict=False)]
            print(f"{phase:<18}" + "".join(f"{m:>22.1f}" for m in marginal))
            if len(marginal) >= 2:
                ratio = marginal[-1] / marginal[-2] if marginal[-2] > 0 else float("inf")
                checks[f"{phase}_marginal_per_row_ratio"] = {"marginal_us_per_row": marginal, "ratio": ratio,
                                                             "target": 1.3, "met": ratio <= 1.3}
        etl_ratio = b["etl"]["peak_rss_mb"] / a["etl"]["peak_rss_mb"]
        checks["etl_peak_rss_ratio"] = {"ratio": etl_ratio, "target": "flat (<=1.2)", "met": etl_ratio <= 1.2}
        lm_small = max(runs[0][p]["localmaker_peak_mb"] for p in ("etl", "train", "transform"))
        lm_big = max(b[p]["localmaker_peak_mb"] for p in ("etl", "train", "transform"))
        checks["localmaker_peak_mb_smallest_vs_largest"] = {"smallest": lm_small, "largest": lm_big,
                                                            "target": "flat (<=1.2x)", "met": lm_big <= 1.2 * lm_small}
    if cap:
        checks["capture_records"] = {"records": cap["records"], "requests": cap["requests"],
                                     "met": cap["records"] == cap["requests"]}
        checks["localmaker_growth_during_capture_mb"] = cap["localmaker_end_mb"] - cap["localmaker_start_mb"]
    results["checks"] = checks
    print()
    for k, v in checks.items():
        print(f"{k}: {v}")
    save("scaling", results)


if __name__ == "__main__":
    main()
