"""How much localmaker adds on top of the work itself.

* CreateTrainingJob -> Completed for a no-op training image (real SageMaker: minutes).
* CreateEndpoint -> InService, minus the serve process's own start-to-ping time measured alone.
* InvokeEndpoint through localmaker vs. the same request straight to the serve process, both
  over keep-alive HTTP from this process, in the same run (the ratio and the difference count).

Prints a table and writes bench/results/localmaker_overhead.json.
"""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from _common import save, start_localmaker  # noqa: E402  (bench/ is the script's own folder on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench-noop:1"
ROLE = "arn:aws:iam::123456789012:role/Bench"


def client(url: str, service: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="b", aws_secret_access_key="b")


def wait(fn, pred, timeout=60.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if pred(v):
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(v)
        time.sleep(interval)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench_training(sm, s3, n: int) -> list[float]:
    s3.put_object(Bucket="bench", Key="in/x.csv", Body=b"1\n")
    times = []
    for i in range(n):
        name = f"noop-{i}-{int(time.time())}"
        t0 = time.perf_counter()
        sm.create_training_job(
            TrainingJobName=name,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            RoleArn=ROLE,
            InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/in/"}}}],
            OutputDataConfig={"S3OutputPath": "s3://bench/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )
        d = wait(lambda name=name: sm.describe_training_job(TrainingJobName=name), lambda d: d["TrainingJobStatus"] != "InProgress")
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        times.append(time.perf_counter() - t0)
    return times


def serve_alone_start() -> tuple[float, subprocess.Popen[bytes], int]:
    """Start the serve program by itself; time until GET /ping answers 200."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": os.environ.get("PATH", ""), "SAGEMAKER_BIND_TO_PORT": str(port)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "echo_serve.py"], cwd=HERE / "images", env=env)

    def ping():
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/ping")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    wait(ping, bool, interval=0.005)
    return time.perf_counter() - t0, proc, port


def bench_endpoint(sm, n: int) -> tuple[list[float], list[float]]:
    sm.create_model(ModelName="noop", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    sm.create_endpoint_config(EndpointConfigName="noop", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "noop", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    through, alone = [], []
    for i in range(n):
        name = f"noop-{i}"
        t0 = time.perf_counter()
        sm.create_endpoint(EndpointName=name, EndpointConfigName="noop")
        d = wait(lambda name=name: sm.describe_endpoint(EndpointName=name), lambda d: d["EndpointStatus"] != "Creating")
        assert d["EndpointStatus"] == "InService", d.get("FailureReason")
        through.append(time.perf_counter() - t0)
        if i < n - 1:
            sm.delete_endpoint(EndpointName=name)
        t, proc, _ = serve_alone_start()
        alone.append(t)
        proc.terminate()
        proc.wait()
    return through, alone


def timed_posts(host: str, port: int, path: str, body: bytes, n: int) -> list[float]:
    c = http.client.HTTPConnection(host, port)
    # localmaker wants a SigV4-shaped Authorization header (it checks the shape, not the signature)
    headers = {"Content-Type": "text/csv", "Accept": "text/csv", "Authorization": (
        "AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/sagemaker/aws4_request, "
        "SignedHeaders=host, Signature=" + "0" * 64)}
    out = []
    for _ in range(n + 50):
        t0 = time.perf_counter()
        c.request("POST", path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        out.append(time.perf_counter() - t0)
        assert r.status == 200 and data == body, (r.status, data[:200])
    c.close()
    return out[50:]  # warm-up discarded


def main() -> None:
    n_jobs = int(os.environ.get("BENCH_JOBS", "10"))
    n_eps = int(os.environ.get("BENCH_ENDPOINTS", "5"))
    n_inv = int(os.environ.get("BENCH_INVOCATIONS", "2000"))
    with tempfile.TemporaryDirectory() as home:
        proc, url = start_localmaker(Path(home), HERE / "images.yaml")
        try:
            sm, s3, rt = client(url, "sagemaker"), client(url, "s3"), client(url, "sagemaker-runtime")
            s3.create_bucket(Bucket="bench")
            train = bench_training(sm, s3, n_jobs)
            through, alone = bench_endpoint(sm, n_eps)
            body = b"0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8\n"
            port = int(url.rsplit(":", 1)[1])
            _, direct_proc, direct_port = serve_alone_start()
            try:
                via = []
                direct = []
                for _ in range(4):  # interleave rounds so drift hits both sides alike
                    via += timed_posts("127.0.0.1", port, f"/endpoints/noop-{n_eps - 1}/invocations", body, n_inv // 4)
                    direct += timed_posts("127.0.0.1", direct_port, "/invocations", body, n_inv // 4)
            finally:
                direct_proc.terminate()
            boto = []
            for _ in range(200):
                t0 = time.perf_counter()
                rt.invoke_endpoint(EndpointName=f"noop-{n_eps - 1}", Body=body, ContentType="text/csv")["Body"].read()
                boto.append(time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(60)
    ms = 1000.0
    results = {
        "training_create_to_completed_s": {"median": statistics.median(train), "p90": pct(train, 0.9), "n": n_jobs, "target_median": 1.0},
        "endpoint_create_to_inservice_s": {"median": statistics.median(through), "n": n_eps},
        "serve_process_alone_start_to_ping_s": {"median": statistics.median(alone), "n": n_eps},
        "endpoint_overhead_beyond_serve_start_s": {"median": statistics.median(through) - statistics.median(alone), "target": 1.0},
        "invoke_direct_ms": {"median": statistics.median(direct) * ms, "p99": pct(direct, 0.99) * ms, "n": len(direct)},
        "invoke_via_localmaker_ms": {"median": statistics.median(via) * ms, "p99": pct(via, 0.99) * ms, "n": len(via)},
        "invoke_added_median_ms": {"value": (statistics.median(via) - statistics.median(direct)) * ms, "target": 1.0},
        "invoke_via_localmaker_boto3_ms": {"median": statistics.median(boto) * ms, "n": len(boto)},
    }
    rows = [
        ("CreateTrainingJob -> Completed (no-op image), median s", results["training_create_to_completed_s"]["median"], "<= 1.0"),
        ("CreateEndpoint -> InService, median s", results["endpoint_create_to_inservice_s"]["median"], ""),
        ("  serve process alone, start -> ping, median s", results["serve_process_alone_start_to_ping_s"]["median"], ""),
        ("  localmaker's share, s", results["endpoint_overhead_beyond_serve_start_s"]["median"], "<= 1.0"),
        ("Invoke direct to serve process, median ms", results["invoke_direct_ms"]["median"], ""),
        ("Invoke through localmaker, median ms", results["invoke_via_localmaker_ms"]["median"], ""),
        ("  added by localmaker, median ms", results["invoke_added_median_ms"]["value"], "<= 1.0"),
        ("Invoke through localmaker with boto3, median ms", results["invoke_via_localmaker_boto3_ms"]["median"], ""),
    ]
    print(f"{'measure':<58}{'value':>10}  target")
    for label, value, target in rows:
        print(f"{label:<58}{value:>10.3f}  {target}")
    save("localmaker_overhead", results)


if __name__ == "__main__":
    main()
