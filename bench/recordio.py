"""RecordIO-protobuf codec speed: the generated ``record_pb2`` messages vs the hand-written codec.

smformats.recordio encodes and decodes ``aialgs.data.Record`` with the protobuf runtime's
generated messages (upb, C). Before that it had a hand-written pure-Python codec; this benchmark
loads that one from git history (``smformats/recordio.py`` in the parent of the commit that added
``smformats/record_pb2.py``) so both run in one process on the same data, interleaved, best of
``--repeat`` runs:

* encode: ``to_recordio_protobuf(features, labels)``, rows x 10 float32 features + a label;
* decode: ``from_recordio_protobuf(data)`` back to ``Record`` tuples;
* framing only: walking the RecordIO frames (shared by both, for scale).

Both write the same bytes (asserted). Ratios are what to compare across machines.

    .venv/bin/python bench/recordio.py [--rows 100000] [--features 10] [--repeat 3]

Writes ``bench/results/recordio.json``. Without git history the baseline row is left out.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import save  # noqa: E402  (bench/ is the script's own folder on sys.path)

from smformats import recordio  # noqa: E402


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=True, text=True).stdout


def _baseline() -> tuple[str, ModuleType] | None:
    """The hand-written codec: smformats/recordio.py just before record_pb2 was added."""
    try:
        added = _git("log", "--diff-filter=A", "--format=%h", "--", "smformats/record_pb2.py").split()
        if not added:
            return None
        commit = f"{added[-1]}^"
        source = _git("show", f"{commit}:smformats/recordio.py")
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "recordio_hand.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("recordio_hand", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return _git("rev-parse", "--short", commit).strip(), module


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.rows, args.features)).astype(np.float32)
    labels = rng.normal(size=args.rows).astype(np.float32)
    baseline = _baseline()
    codecs: dict[str, Any] = {"protobuf (record_pb2)": recordio}
    hand_name = ""
    if baseline is not None:
        hand_name = f"hand-written ({baseline[0]})"
        codecs[hand_name] = baseline[1]

    timings: dict[str, dict[str, float]] = {name: {} for name in codecs}
    encoded: dict[str, bytes] = {}
    for _ in range(args.repeat):  # interleaved, so both see the same machine state
        for name, codec in codecs.items():
            seconds, data = _best(partial(codec.to_recordio_protobuf, features, labels), 1)
            timings[name]["encode_s"] = min(timings[name].get("encode_s", float("inf")), seconds)
            encoded[name] = data
            seconds, records = _best(partial(codec.from_recordio_protobuf, data), 1)
            timings[name]["decode_s"] = min(timings[name].get("decode_s", float("inf")), seconds)
            assert len(records) == args.rows
    assert len(set(encoded.values())) == 1, "the codecs wrote different bytes"
    data = next(iter(encoded.values()))
    framing, _ = _best(lambda: sum(1 for _ in recordio.iter_recordio(io.BytesIO(data))), args.repeat)

    print(f"{args.rows:,} rows x {args.features} float32 features + label, {len(data):,} bytes, "
          f"best of {args.repeat}")
    print(f"{'codec':<28}{'encode s':>10}{'decode s':>10}{'rows/s enc':>14}{'rows/s dec':>14}")
    for name, t in timings.items():
        print(f"{name:<28}{t['encode_s']:>10.3f}{t['decode_s']:>10.3f}"
              f"{args.rows / t['encode_s']:>14,.0f}{args.rows / t['decode_s']:>14,.0f}")
    print(f"{'framing only':<28}{'':>10}{framing:>10.3f}")
    ratios = {}
    if hand_name:
        new, old = timings["protobuf (record_pb2)"], timings[hand_name]
        ratios = {"encode_speedup": old["encode_s"] / new["encode_s"], "decode_speedup": old["decode_s"] / new["decode_s"]}
        print(f"protobuf vs hand-written: encode {ratios['encode_speedup']:.2f}x, decode {ratios['decode_speedup']:.2f}x")

    save("recordio", {
        "rows": args.rows, "features": args.features, "repeat": args.repeat, "bytes": len(data),
        "timings": timings, "framing_s": framing, "ratios": ratios,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    })


if __name__ == "__main__":
    main()
