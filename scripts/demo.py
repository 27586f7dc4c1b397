"""`make demo`: the training pipeline end to end on localmaker, then a live prediction.

Starts localmaker with the project's images, bootstraps what the CloudFormation stack provides
on AWS (the stage's bucket, the alerts topic), runs `airflow dags test <model>_training` in an
isolated AIRFLOW_HOME, prints the test metrics, the endpoints and a prediction, and stops
localmaker (its state stays in .localmaker/demo for a look around).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="diabetes_dnn")
    ap.add_argument("--port", type=int, default=0, help="localmaker port (0: a free one)")
    ap.add_argument("--keep-state", action="store_true", help="reuse .localmaker/demo and .airflow/demo")
    args = ap.parse_args()

    from include.mlpipeline.bootstrap import provision_stage
    from include.mlpipeline.config import load_config
    from tests.airflow_helpers import airflow_env, dags_test, migrate

    cfg = load_config(args.model, "dev")
    lm_home, af_home = ROOT / ".localmaker" / "demo", ROOT / ".airflow" / "demo"
    if not args.keep_state:
        shutil.rmtree(lm_home, ignore_errors=True)
        shutil.rmtree(af_home, ignore_errors=True)
    t0 = time.monotonic()
    print("starting localmaker ...")
    from localmaker.launcher import start

    server = start(lm_home, port=args.port, echo=True)
    url = server.url
    try:
        import boto3

        kw = {"endpoint_url": url, "region_name": cfg.aws.region, "aws_access_key_id": "demo", "aws_secret_access_key": "demo"}
        s3, sm, sns = boto3.client("s3", **kw), boto3.client("sagemaker", **kw), boto3.client("sns", **kw)
        rt = boto3.client("sagemaker-runtime", **kw)
        provision_stage(cfg, s3, sns)
        env = airflow_env(af_home, ROOT / "dags", url)
        print("preparing Airflow (isolated AIRFLOW_HOME=.airflow/demo) ...")
        migrate(env)
        dag_id = f"{args.model}_training"
        print(f"running `airflow dags test {dag_id}` (auto_approve) ...")
        result = dags_test(dag_id, env, conf={"auto_approve": True}, stream=True)
        if result.returncode != 0 or "state=success" not in result.stdout:
            print(result.stdout[-6000:])
            print(f"\nDEMO FAILED: {dag_id} did not succeed (exit {result.returncode})")
            return 1
        print(f"\n{dag_id} succeeded in {time.monotonic() - t0:.0f} s\n")
        report_key = _latest(s3, cfg.aws.bucket, f"{args.model}/", "evaluation/evaluation.json")
        report = json.loads(s3.get_object(Bucket=cfg.aws.bucket, Key=report_key)["Body"].read())
        print("test-set metrics (batch transform on SageMaker/localmaker):")
        for k, v in report["metrics"].items():
            print(f"  {k:>5} = {v:.4g}")
        print(f"report: s3://{cfg.aws.bucket}/{report_key.rsplit('/', 1)[0]}/")
        print("endpoints:")
        for name in (cfg.endpoint.dev_name, cfg.endpoint.prod_name):
            d = sm.describe_endpoint(EndpointName=name)
            print(f"  {name}: {d['EndpointStatus']} (config {d['EndpointConfigName']})")
        prefix = f"{args.model}/baselines/"
        baselines = [o["Key"] for o in s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=prefix).get("Contents", [])]
        print(monitoring_line(cfg, [k.rsplit("/", 1)[1] for k in baselines if k.endswith(".json")],
                              f"s3://{cfg.aws.bucket}/{prefix}"))
        # one held-out example of this run, sent as the model's users send it (CSV row or image)
        from include.mlpipeline.smoke import test_requests

        run_uri = f"s3://{cfg.aws.bucket}/{report_key.split('evaluation/')[0]}"
        channels = {c: f"{run_uri}{c}/" for c in ("test", "test_features", "test_labels")}
        (body,), (label,) = test_requests(cfg, s3, channels, 1)
        shown = body.decode().strip() if cfg.inference.content_type == "text/csv" else f"<{len(body)}-byte image>"
        t = time.perf_counter()
        pred = rt.invoke_endpoint(EndpointName=cfg.endpoint.prod_name, Body=body,
                                  ContentType=cfg.inference.content_type, Accept=cfg.inference.accept)
        ms = (time.perf_counter() - t) * 1000
        print(prediction_line(cfg, shown, label, pred["Body"].read().decode().strip(), ms))
        print(f"\ndemo done in {time.monotonic() - t0:.0f} s")
        return 0
    finally:
        server.stop()


def clip(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def monitoring_line(cfg, baseline_files: list[str], where: str) -> str:
    if not cfg.monitoring.enabled:
        return "monitoring: off for this model (monitoring.enabled: false), so no baseline"
    if not baseline_files:
        return f"monitoring baseline: none under {where}"
    return f"monitoring baseline: {', '.join(baseline_files)} under {where}"


def prediction_line(cfg, shown: str, label: float, answer: str, ms: float) -> str:
    if cfg.evaluation.task == "clustering":
        # k-means numbers its clusters arbitrarily: cluster 0 is not "the zeros" (evaluation scores purity)
        truth = f"true {cfg.data.label_column} {label:g}; cluster ids are arbitrary, not labels"
    else:
        truth = f"label {label:g}"
    return (f"live prediction from {cfg.endpoint.prod_name} for [{clip(shown, 80)}] ({truth}): "
            f"{clip(answer, 200)} ({ms:.1f} ms)")


def _latest(s3, bucket: str, prefix: str, suffix: str) -> str:
    keys = [o for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in p.get("Contents", []) if o["Key"].endswith(suffix)]
    if not keys:
        raise SystemExit(f"no {suffix} under s3://{bucket}/{prefix}")
    return max(keys, key=lambda o: o["LastModified"])["Key"]


if __name__ == "__main__":
    sys.exit(main())
