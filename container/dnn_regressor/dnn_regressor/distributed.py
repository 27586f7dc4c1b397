"""Multi-host training: TF_CONFIG from the SageMaker host list, and a tiny all-reduce API.

With more than one host in ``resourceconfig.json`` every host runs one worker of a
``tf.distribute.MultiWorkerMirroredStrategy``; the first host is the chief (worker 0) and the
only one that writes the model. Each worker needs every worker's ``host:port``:

* ``TRAINING_HOST_ADDRESSES`` (JSON ``{"algo-1": "127.0.0.1:41001", ...}``), when set, gives
  them verbatim. localmaker sets it because it runs all hosts as processes on one machine and
  reserves a port per host.
* otherwise ``<host>:2222``: on SageMaker the host names resolve through DNS.

Listening address: TensorFlow's gRPC server (``grpc_server_lib.cc``) binds ``0.0.0.0:<port of this
task>`` whatever host the cluster spec gives, and neither ``TF_CONFIG``, ``ServerDef`` nor the
``protocol`` argument can change that (TensorFlow 2.21: the worker of ``127.0.0.1:23456`` listens on
``*:23456``). Under localmaker the cluster addresses are loopback, so the workers talk over
loopback, but each worker's port is open on every interface while training runs.

Everything else in training talks to :class:`Cluster`, which is the same object for one host
(a no-op all-reduce) and many, so there is one training code path.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ClientError

ADDRESSES_ENV = "TRAINING_HOST_ADDRESSES"
STARTUP_TIMEOUT_ENV = "DNN_REGRESSOR_CLUSTER_TIMEOUT"
DEFAULT_PORT = 2222
DEFAULT_STARTUP_TIMEOUT = 300.0


def host_addresses(hosts: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """``host -> "address:port"`` for every host, from the env var or the DNS convention."""
    raw = environ.get(ADDRESSES_ENV)
    if not raw:
        return {h: f"{h}:{DEFAULT_PORT}" for h in hosts}
    try:
        given = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ClientError(f"{ADDRESSES_ENV} is not valid JSON ({exc.msg}): {raw[:200]}") from exc
    if not isinstance(given, dict):
        raise ClientError(f"{ADDRESSES_ENV} must be a JSON object host -> 'address:port', got {raw[:200]}")
    missing = [h for h in hosts if h not in given]
    if missing:
        raise ClientError(f"{ADDRESSES_ENV} has no address for host(s) {missing}; it lists {sorted(given)}")
    out = {}
    for host in hosts:
        address = str(given[host])
        _, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ClientError(
                f"{ADDRESSES_ENV}: address '{address}' of host {host} must look like 'host:port'"
            )
        out[host] = address
    return out


def tf_config(hosts: list[str], current_host: str, addresses: Mapping[str, str]) -> dict[str, Any]:
    """The TF_CONFIG of one worker: all workers in host order, this host's index as its task."""
    return {
        "cluster": {"worker": [addresses[h] for h in hosts]},
        "task": {"type": "worker", "index": hosts.index(current_host)},
    }


def colocated_workers(addresses: Mapping[str, str], current_host: str) -> int:
    """How many workers share this machine (all of them under localmaker, one on SageMaker)."""
    mine = addresses[current_host].rpartition(":")[0]
    return sum(1 for a in addresses.values() if a.rpartition(":")[0] == mine)


@dataclass
class Cluster:
    """The strategy plus the few collective operations training needs.

    Attributes:
        strategy: ``MultiWorkerMirroredStrategy`` for several hosts, the default strategy otherwise.
        num_workers / worker_index: this host's place in the host list (0 is the chief).
    """

    strategy: Any
    num_workers: int = 1
    worker_index: int = 0
    _sum_fn: Callable[[Any], Any] | None = field(default=None, repr=False)

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    def all_sum(self, values: np.ndarray | list[float]) -> np.ndarray:
        """Element-wise sum of a float64 vector over all workers (identity on one worker).

        Every worker must call it the same number of times in the same order: it is a
        collective operation, and a worker that skips one leaves the others waiting.
        """
        vector = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.num_workers == 1:
            return vector
        if self._sum_fn is None:
            import tensorflow as tf

            strategy = self.strategy

            @tf.function(input_signature=[tf.TensorSpec([None], tf.float64)])
            def _sum(v: Any) -> Any:
                per_replica = strategy.run(tf.identity, args=(v,))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._sum_fn = _sum
        return np.asarray(self._sum_fn(vector), dtype=np.float64)

    def all_equal(self, values: np.ndarray | list[float]) -> bool:
        """True iff every worker passed the same vector (sum^2 == n * sum of squares)."""
        vector = np.asarray(values, dtype=np.float64).reshape(-1)
        totals = self.all_sum(np.concatenate([vector, vector**2]))
        s, sq = totals[: vector.size], totals[vector.size :]
        return bool(np.allclose(s**2, self.num_workers * sq, rtol=1e-12, atol=0.0))

    def gather_scalar(self, value: float) -> np.ndarray:
        """Every worker's scalar, indexed by worker."""
        slot = np.zeros(self.num_workers)
        slot[self.worker_index] = value
        return self.all_sum(slot)


def _limit_threads(colocated: int) -> None:
    """Share the CPUs between workers on one machine instead of oversubscribing them."""
    import tensorflow as tf

    cpus = os.cpu_count() or 1
    per_worker = max(1, cpus // max(1, colocated))
    tf.config.threading.set_intra_op_parallelism_threads(per_worker)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, per_worker)))


def connect(
    hosts: list[str],
    current_host: str,
    environ: Mapping[str, str],
    on_startup_timeout: Callable[[str], None],
) -> Cluster:
    """Join the cluster (or not, for one host) and prove it with a first all-reduce.

    A worker whose peers never come up (a peer failed on bad data before joining, a wrong
    address) would otherwise block forever inside TensorFlow; a watchdog calls
    ``on_startup_timeout`` with a reason after ``DNN_REGRESSOR_CLUSTER_TIMEOUT`` seconds
    (default 300), which must end the process.
    """
    if len(hosts) == 1:
        os.environ.pop("TF_CONFIG", None)
        import tensorflow as tf

        return Cluster(strategy=tf.distribute.get_strategy())

    addresses = host_addresses(hosts, environ)
    config = tf_config(hosts, current_host, addresses)
    os.environ["TF_CONFIG"] = json.dumps(config)
    try:
        timeout = float(environ.get(STARTUP_TIMEOUT_ENV) or DEFAULT_STARTUP_TIMEOUT)
    except ValueError:
        raise ClientError(f"{STARTUP_TIMEOUT_ENV} must be a number of seconds") from None
    reason = (
        f"timed out after {timeout:g} s waiting for all hosts {hosts} to join the training cluster "
        f"at {[addresses[h] for h in hosts]} (this host: {current_host}); check that every host "
        f"started and did not fail first, and that the addresses are reachable"
    )
    watchdog = threading.Timer(timeout, on_startup_timeout, args=(reason,))
    watchdog.daemon = True
    watchdog.start()
    # TensorFlow can block inside C++ while holding the GIL, where no Python timer can run; the
    # kernel's alarm ends the process regardless, a few seconds after the Python watchdog had its
    # chance to write the reason (written up front too, so it is there whichever fires).
    on_startup_timeout_file = environ.get("_DNN_REGRESSOR_FAILURE_FILE")
    if on_startup_timeout_file:
        _write_pending_reason(on_startup_timeout_file, reason)
    if hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(math.ceil(timeout)) + 5)
    try:
        _limit_threads(colocated_workers(addresses, current_host))
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        cluster = Cluster(strategy=strategy, num_workers=len(hosts), worker_index=hosts.index(current_host))
        joined = cluster.all_sum([1.0])
        if int(joined[0]) != len(hosts):  # pragma: no cover - would be a TensorFlow bug
            raise RuntimeError(f"cluster handshake counted {joined[0]} workers, expected {len(hosts)}")
    finally:
        watchdog.cancel()
        if hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread():
            signal.alarm(0)
        if on_startup_timeout_file:
            _clear_pending_reason(on_startup_timeout_file)
    return cluster


def _write_pending_reason(path: str, reason: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"AlgorithmError: {reason}")
    except OSError:
        pass


def _clear_pending_reason(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
