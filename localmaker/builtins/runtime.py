"""The training side of the container contract, shared by the built-in algorithm programs.

A built-in reads ``/opt/ml`` (``SAGEMAKER_BASE_DIR`` under localmaker), validates hyperparameters
the way the real algorithm does (unknown names, types, ranges, required ones: with the real
error text, because users search for it), prints metric lines its ``MetricDefinitions`` regexes
read, writes ``model/`` and, when it fails, a one-line reason to ``output/failure`` before exiting
non-zero. AWS prefixes a user's mistake with ``ClientError:`` and an algorithm fault with
``AlgorithmError:``; :class:`ClientError` and :func:`main` keep that distinction.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar


class ClientError(Exception):
    """The user's input is wrong (hyperparameters, data): the job fails with ``ClientError: ...``."""


def base_dir() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


@dataclass
class TrainingEnv:
    base: Path
    hyperparameters: dict[str, str]
    channels: dict[str, dict[str, Any]]
    hosts: list[str]
    current_host: str

    @classmethod
    def load(cls, base: Path | None = None) -> TrainingEnv:
        base = base or base_dir()
        cfg = base / "input" / "config"
        hps = _read_json(cfg / "hyperparameters.json", {})
        channels = _read_json(cfg / "inputdataconfig.json", {})
        resource = _read_json(cfg / "resourceconfig.json", {})
        return cls(
            base=base,
            hyperparameters={str(k): str(v) for k, v in hps.items()},
            channels=channels,
            hosts=list(resource.get("hosts") or ["algo-1"]),
            current_host=str(resource.get("current_host") or "algo-1"),
        )

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.base / "output" / "data"

    def channel_dir(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    def has_channel(self, name: str) -> bool:
        return name in self.channels

    def content_type(self, name: str, default: str) -> str:
        """The channel's ContentType without parameters (``text/csv;label_size=1`` -> ``text/csv``)."""
        ct = (self.channels.get(name) or {}).get("ContentType") or default
        return ct.split(";")[0].strip().lower()

    def content_type_params(self, name: str) -> dict[str, str]:
        ct = (self.channels.get(name) or {}).get("ContentType") or ""
        out = {}
        for part in ct.split(";")[1:]:
            k, _, v = part.partition("=")
            out[k.strip().lower()] = v.strip()
        return out

    def channel_files(self, name: str) -> list[Path]:
        """Data files of a channel in a stable order (hidden files and manifests skipped)."""
        root = self.channel_dir(name)
        if not root.is_dir():
            raise ClientError(f"Channel '{name}' has no data directory {root}.")
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ClientError(f"No data files found in channel '{name}'. Check the channel's S3Uri.")
        return files

    @property
    def is_leader(self) -> bool:
        return self.current_host == sorted(self.hosts)[0]


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


# ---- hyperparameters ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HP:
    """One hyperparameter: its parser, default (None = optional without default) and whether required."""

    parse: Callable[[str], Any]
    default: Any = None
    required: bool = False


def parse_hyperparameters(
    given: Mapping[str, str], spec: Mapping[str, HP], *, ignore_unknown: Iterable[str] = ()
) -> dict[str, Any]:
    """Validate as SageMaker's first-party algorithms do (all missing required names in one message)."""
    missing = [name for name, hp in spec.items() if hp.required and name not in given]
    if missing:
        names = ", ".join(f"'{n}'" for n in missing)
        raise ClientError(
            f"No value(s) were specified for {names} which are required hyperparameter(s) (caused by ValidationError)"
        )
    skip = set(ignore_unknown)
    unknown = sorted(k for k in given if k not in spec and k not in skip and not k.startswith("_"))
    if unknown:
        raise ClientError(
            f"Additional hyperparameters are not allowed ({', '.join(repr(u) for u in unknown)} were unexpected) "
            "(caused by ValidationError)"
        )
    out: dict[str, Any] = {}
    for name, hp in spec.items():
        if name in given:
            try:
                out[name] = hp.parse(given[name])
            except (ValueError, TypeError) as exc:
                raise ClientError(
                    f"Hyperparameter '{name}': value {given[name]!r} is not valid: {exc} (caused by ValidationError)"
                ) from exc
        else:
            out[name] = hp.default
    return out


_N = TypeVar("_N", int, float)


def _in_range(x: _N, lo: float | None, hi: float | None) -> _N:
    """``x`` if within the optional bounds ``[lo, hi]``, else the ValueError the hyperparameter message quotes."""
    if lo is not None and x < lo:
        raise ValueError(f"must be >= {lo}")
    if hi is not None and x > hi:
        raise ValueError(f"must be <= {hi}")
    return x


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    def parse(v: str) -> int:
        f = float(v)
        if not f.is_integer():
            raise ValueError("must be an integer")
        return _in_range(int(f), lo, hi)

    return parse


def float_in(lo: float | None = None, hi: float | None = None) -> Callable[[str], float]:
    def parse(v: str) -> float:
        f = float(v)
        if f != f:
            raise ValueError("must be a number")
        return _in_range(f, lo, hi)

    return parse


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if v not in choices:
            raise ValueError(f"must be one of {list(choices)}")
        return v

    return parse


def boolean(v: str) -> bool:
    s = str(v).strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    raise ValueError("must be true or false")


# ---- logging and the exit path -------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, flush=True)


def fail(message: str, base: Path | None = None) -> int:
    """Write the failure file SageMaker turns into FailureReason and return the exit code."""
    out = (base or base_dir()) / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "failure").write_text(message)
    print(message, file=sys.stderr, flush=True)
    return 1


def main(train: Callable[[TrainingEnv], None], serve: Callable[[], None], argv: list[str] | None = None) -> int:
    """``train`` / ``serve`` entry point as the real images' ``docker run <image> train|serve``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("train", "serve"):
        print("usage: python -m localmaker.builtins.<algorithm> train|serve", file=sys.stderr)
        return 2
    if args[0] == "serve":
        serve()
        return 0
    try:
        env = TrainingEnv.load()
    except (OSError, ValueError) as exc:
        return fail(f"ClientError: cannot read the training configuration: {exc}")
    try:
        train(env)
    except ClientError as exc:
        return fail(f"ClientError: {exc}", env.base)
    except Exception as exc:  # noqa: BLE001 - anything else is the algorithm's fault, as on AWS
        traceback.print_exc()
        return fail(f"AlgorithmError: {type(exc).__name__}: {exc}", env.base)
    return 0


# ---- dense training data (the 1P algorithms' text/csv and RecordIO-protobuf channels) -----------------
def check_channels(env: TrainingEnv, allowed: Iterable[str], reads: str,
                   train_required: str = "The 'train' channel is required.") -> None:
    """The real algorithms' channel checks, in their words: no channel they do not read, then 'train'."""
    unknown = sorted(set(env.channels) - set(allowed))
    if unknown:
        raise ClientError(f"Unsupported channel(s) {unknown}: {reads}")
    if not env.has_channel("train"):
        raise ClientError(train_required)


def check_labelled_channels(env: TrainingEnv, allowed: Iterable[str], algorithm: str, reads: str) -> None:
    """:func:`check_channels` for a supervised algorithm: ``"<algorithm> reads <reads>."`` and a 'train'
    channel that must hold labelled data."""
    check_channels(env, allowed, f"{algorithm} reads {reads}.",
                   f"The 'train' channel is required: {algorithm} needs labelled training data.")


def on_leader(env: TrainingEnv, work: str, log: Callable[[str], None]) -> bool:
    """True on the leader (algo-1), which does ``work`` alone; elsewhere logs that there is nothing to do."""
    if env.is_leader:
        return True
    log(f"{env.current_host}: {work} on {sorted(env.hosts)[0]}; nothing to do on this host.")
    return False


def model_file(model_dir: Path, name: str) -> Path:
    """``name`` in the extracted model (at its top, else the first one below it, as tarred by hand)."""
    path = model_dir / name
    if path.is_file():
        return path
    found = sorted(model_dir.rglob(name))
    if not found:
        raise FileNotFoundError(f"{name} not found under {model_dir}")
    return found[0]


def read_dense_channel(
    env: TrainingEnv, name: str, *, label_size: int = 1, feature_dim: int | None = None
) -> tuple[Any, Any]:
    """All records of a channel as ``(features, labels)`` float32 matrices; ``labels`` is None when
    the data has none.

    Follows SageMaker's common training formats: ``application/x-recordio-protobuf`` (the default
    when the channel names no ContentType, as for the SDK's ``record_set``) with the features and
    label under the ``values`` key, or header-less ``text/csv`` whose first ``label_size`` columns
    (``text/csv;label_size=0`` for none; default ``label_size``) are the label. Bad data is the
    user's mistake, so every problem raises :class:`ClientError` naming the file and row.
    """
    import numpy as np

    ctype = env.content_type(name, "application/x-recordio-protobuf")
    files = env.channel_files(name)
    if ctype in ("text/csv", "csv"):
        raw = env.content_type_params(name).get("label_size")
        try:
            n_label = label_size if raw is None else int(raw)
        except ValueError:
            raise ClientError(f"Channel '{name}': label_size={raw!r} in the ContentType is not an integer.") from None
        parts = [m for m in (_read_csv_file(path, name) for path in files) if m.size]
        if not parts:
            raise ClientError(f"Channel '{name}' has no rows.")
        if len({m.shape[1] for m in parts}) > 1:
            raise ClientError(f"Channel '{name}': files have different column counts {sorted({m.shape[1] for m in parts})}.")
        matrix = np.concatenate(parts, axis=0)
        if matrix.shape[1] <= n_label:
            raise ClientError(
                f"Channel '{name}': rows have {matrix.shape[1]} column(s), but label_size={n_label} leaves no features."
            )
        features, labels = matrix[:, n_label:], (matrix[:, :n_label] if n_label else None)
    elif ctype in ("application/x-recordio-protobuf", "application/x-recordio"):
        from smformats.recordio import RecordIOError, read_recordio_protobuf

        feats: list[Any] = []
        labs: list[Any] = []
        for path in files:
            try:
                with path.open("rb") as fh:
                    for rec in read_recordio_protobuf(fh):
                        feats.append(rec.features)
                        labs.append(rec.label)
            except RecordIOError as exc:
                raise ClientError(f"Channel '{name}', file {path.name}: not valid RecordIO-protobuf: {exc}") from None
        if not feats:
            raise ClientError(f"Channel '{name}' has no records.")
        widths = {len(f) for f in feats}
        if len(widths) > 1:
            raise ClientError(f"Channel '{name}': records have different feature counts {sorted(widths)}.")
        features = np.asarray(feats, dtype=np.float32)
        with_label = [lab is not None for lab in labs]
        if all(with_label):
            if len({len(lab) for lab in labs}) > 1:
                raise ClientError(f"Channel '{name}': records have labels of different sizes.")
            labels = np.asarray(labs, dtype=np.float32)
        elif any(with_label):
            first = with_label.index(False)
            raise ClientError(f"Channel '{name}': record {first} has no label while others have one.")
        else:
            labels = None
    else:
        raise ClientError(
            f"Content type '{ctype}' of channel '{name}' is not supported; "
            "use 'text/csv' or 'application/x-recordio-protobuf'."
        )
    if not np.isfinite(features).all():
        raise ClientError(f"Channel '{name}': features contain NaN or infinite values.")
    if labels is not None and not np.isfinite(labels).all():
        raise ClientError(f"Channel '{name}': labels contain NaN or infinite values.")
    if feature_dim is not None and features.shape[1] != feature_dim:
        hint = " (for text/csv, the first label_size columns are the label)" if ctype == "text/csv" else ""
        raise ClientError(
            f"Channel '{name}' has {features.shape[1]} features per record but feature_dim is {feature_dim}{hint}."
        )
    return features, labels


def _read_csv_file(path: Path, channel: str) -> Any:
    """One header-less numeric CSV file -> float32 matrix; the error names the line and column."""
    import numpy as np

    from smformats.csv import CsvRowError, numeric_rows

    with path.open("r", encoding="utf-8", errors="replace") as fh:
        try:
            rows = [row for _, row in numeric_rows(fh)]
        except CsvRowError as exc:
            if exc.column is not None:
                raise ClientError(
                    f"Channel '{channel}', file {path.name}, line {exc.lineno}, column {exc.column}: "
                    f"{exc.cell!r} is not a number (CSV training data must be numeric, without a header)."
                ) from None
            raise ClientError(
                f"Channel '{channel}', file {path.name}, line {exc.lineno} has {exc.got} columns; "
                f"the first row has {exc.width}."
            ) from None
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(rows[0]) if rows else 0)
