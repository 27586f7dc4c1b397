"""Multi-host training: a real 2-worker MultiWorkerMirroredStrategy run as two ``train`` processes.

The hosts find each other through ``TRAINING_HOST_ADDRESSES`` exactly as under localmaker, and
each reads only its own shard of the channels.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.container.dnn_regressor_support import (
    TRAIN,
    clean_env,
    failure_text,
    free_port,
    make_job,
    make_rows,
    r_squared,
    run_train,
    write_csv,
)

HOSTS = ["algo-1", "algo-2"]


def _two_host_job(tmp_path: Path, shards: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Path]:
    bases = {}
    for host in HOSTS:
        base = make_job(tmp_path / host, hosts=HOSTS, current_host=host)
        train, validation = shards[host]
        write_csv(base / "input/data/train" / f"shard-{host}.csv", train)
        write_csv(base / "input/data/validation" / f"shard-{host}.csv", validation)
        bases[host] = base
    return bases


def _run_hosts(tmp_path: Path, bases: dict[str, Path], **extra_env: str) -> dict[str, tuple[int, str, str]]:
    ports = {host: free_port() for host in HOSTS}
    addresses = json.dumps({host: f"127.0.0.1:{port}" for host, port in ports.items()})
    procs = {}
    for host, base in bases.items():
        scratch = tmp_path / f"tmp-{host}"
        scratch.mkdir()
        env = clean_env(
            SAGEMAKER_BASE_DIR=str(base), TRAINING_HOST_ADDRESSES=addresses, TMPDIR=str(scratch), **extra_env
        )
        procs[host] = subprocess.Popen(
            [sys.executable, str(TRAIN)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    results = {}
    try:
        for host, proc in procs.items():
            out, err = proc.communicate(timeout=150)
            results[host] = (proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def test_two_hosts_train_one_model_with_global_statistics(tmp_path: Path) -> None:
    train = np.round(make_rows(1700, seed=21), 6)  # as written to the CSV files
    validation = make_rows(300, seed=22)
    # Unequal shards: the hosts must still run the same number of steps per epoch.
    shards = {"algo-1": (train[:1000], validation[:200]), "algo-2": (train[1000:], validation[200:])}
    bases = _two_host_job(tmp_path, shards)

    results = _run_hosts(tmp_path, bases)

    for host, (code, out, err) in results.items():
        assert code == 0, f"{host} failed ({failure_text(bases[host])}):\n{out}\n{err[-3000:]}"
    chief_out, worker_out = results["algo-1"][1], results["algo-2"][1]
    assert (bases["algo-1"] / "model/model.keras").is_file()
    assert not (bases["algo-2"] / "model").exists() or not any((bases["algo-2"] / "model").iterdir())
    assert not any((tmp_path / "tmp-algo-2").iterdir()), "the worker's scratch model was not deleted"
    assert "validation:rmse=" in chief_out and "validation:rmse=" not in worker_out
    assert "epoch 1 done" in worker_out

    metadata = json.loads((bases["algo-1"] / "model/metadata.json").read_text())
    assert metadata["hosts"] == HOSTS
    assert metadata["n_train"] == 1700 and metadata["n_validation"] == 300
    norm = metadata["normalization"]
    np.testing.assert_allclose(norm["feature_mean"], train[:, 1:].mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(norm["feature_std"], train[:, 1:].std(axis=0), rtol=1e-9)
    assert norm["label_mean"] == pytest.approx(train[:, 0].mean(), rel=1e-9)

    from dnn_regressor.inference import load_regressor

    model = load_regressor(bases["algo-1"] / "model")
    assert model.source == "inference.json"  # the chief exported the numpy form too
    test = make_rows(300, seed=23)
    assert r_squared(test[:, 0], model.predict(test[:, 1:])) > 0.9


def test_hosts_with_different_columns_both_fail_with_the_reason(tmp_path: Path) -> None:
    rows = make_rows(200, seed=31)
    extra = np.column_stack([rows, rows[:, 1]])
    bases = {}
    for host, data in (("algo-1", rows), ("algo-2", extra)):
        header = ("y", "x1", "x2", "x3") if data.shape[1] == 4 else ("y", "x1", "x2", "x3", "x4")
        base = make_job(tmp_path / host, hosts=HOSTS, current_host=host)
        write_csv(base / "input/data/train/t.csv", data, header=header)
        write_csv(base / "input/data/validation/v.csv", data[:50], header=header)
        bases[host] = base

    results = _run_hosts(tmp_path, bases)

    for host, (code, _, _) in results.items():
        assert code == 1
        assert "hosts' data do not have the same columns" in failure_text(bases[host])


def test_a_host_whose_peers_never_join_fails_with_a_timeout(tmp_path: Path) -> None:
    base = make_job(tmp_path / "algo-1", hosts=HOSTS, current_host="algo-1")
    write_csv(base / "input/data/train/t.csv", make_rows(100, seed=41))
    write_csv(base / "input/data/validation/v.csv", make_rows(20, seed=42))
    addresses = json.dumps({h: f"127.0.0.1:{free_port()}" for h in HOSTS})

    result = run_train(base, TRAINING_HOST_ADDRESSES=addresses, DNN_REGRESSOR_CLUSTER_TIMEOUT="3")

    assert result.returncode != 0  # 1 from the watchdog, or SIGALRM if TensorFlow held the GIL
    reason = failure_text(base)
    assert reason.startswith("AlgorithmError: timed out after 3 s waiting for all hosts ['algo-1', 'algo-2']")


class TestClusterSpec:
    def test_addresses_from_the_environment(self) -> None:
        from dnn_regressor.distributed import colocated_workers, host_addresses, tf_config

        env = {
            "TRAINING_HOST_ADDRESSES": json.dumps({"algo-1": "127.0.0.1:41001", "algo-2": "127.0.0.1:41002"})
        }
        addresses = host_addresses(HOSTS, env)
        assert addresses == {"algo-1": "127.0.0.1:41001", "algo-2": "127.0.0.1:41002"}
        assert tf_config(HOSTS, "algo-2", addresses) == {
            "cluster": {"worker": ["127.0.0.1:41001", "127.0.0.1:41002"]},
            "task": {"type": "worker", "index": 1},
        }
        assert colocated_workers(addresses, "algo-1") == 2

    def test_dns_names_by_default(self) -> None:
        from dnn_regressor.distributed import colocated_workers, host_addresses

        addresses = host_addresses(HOSTS, {})
        assert addresses == {"algo-1": "algo-1:2222", "algo-2": "algo-2:2222"}
        assert colocated_workers(addresses, "algo-1") == 1

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("{not json", "is not valid JSON"),
            ('["127.0.0.1:1"]', "must be a JSON object"),
            ('{"algo-1": "127.0.0.1:1"}', "no address for host(s) ['algo-2']"),
            ('{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1:2"}', "must look like 'host:port'"),
        ],
    )
    def test_bad_addresses(self, value: str, message: str) -> None:
        from dnn_regressor.distributed import host_addresses
        from dnn_regressor.errors import ClientError

        with pytest.raises(
            ClientError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
        ):
            host_addresses(HOSTS, {"TRAINING_HOST_ADDRESSES": value})

    def test_resource_config_must_list_the_current_host(self, tmp_path: Path) -> None:
        from dnn_regressor.environment import TrainingEnvironment
        from dnn_regressor.errors import ClientError

        base = make_job(tmp_path / "ml", hosts=HOSTS, current_host="algo-3")
        with pytest.raises(ClientError, match="current_host 'algo-3' is not in hosts"):
            TrainingEnvironment.from_env({"SAGEMAKER_BASE_DIR": str(base)})

    def test_sm_variables_override_derived_paths(self, tmp_path: Path) -> None:
        from dnn_regressor.environment import TrainingEnvironment

        base = make_job(tmp_path / "ml", hosts=HOSTS, current_host="algo-2")
        env = TrainingEnvironment.from_env(
            {
                "SAGEMAKER_BASE_DIR": str(base),
                "SM_MODEL_DIR": "/m",
                "SM_CHANNEL_TRAIN": "/t",
                "SM_OUTPUT_DATA_DIR": "/o",
            }
        )
        assert env.model_dir == Path("/m") and env.channel_dir("train") == Path("/t")
        assert env.channel_dir("validation") == base / "input/data/validation"
        assert env.output_data_dir == Path("/o") and env.failure_file == base / "output/failure"
        assert env.current_host == "algo-2" and not env.is_chief and env.is_distributed
