"""include/mlpipeline/etl.py: extraction from file/S3/HTTP, quarantine, split, layout, upload."""

from __future__ import annotations

import csv
import http.server
import io
import json
import threading
import tracemalloc
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from include.mlpipeline.config import PROJECT_ROOT, PipelineConfig, load_config
from include.mlpipeline.etl import (
    DataValidationError,
    EtlResult,
    assign_channels,
    iter_csv_chunks,
    open_source,
    prepare_batch_input,
    resolve_local_path,
    row_keys,
    run_etl,
    validate_chunk,
)
from include.mlpipeline.run import RunContext
from smformats.csv import read_algorithm_csv

DATA = PROJECT_ROOT / "include" / "data"
HEADER = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,target"
GOOD_ROWS = (DATA / "diabetes.csv").read_text().splitlines()[1:]


def cfg_with(stage: str = "dev", **data: Any) -> PipelineConfig:
    return load_config("diabetes_dnn", stage, {"data": data} if data else None)


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return f"file://{path}"


def generated_rows(n: int, seed: int = 0) -> list[str]:
    """Plausible rows inside the schema's ranges, for size tests."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        rows.append(
            f"{rng.integers(20, 80)},{rng.integers(1, 3)},{rng.uniform(18, 42):.1f},{rng.uniform(60, 130):.1f},"
            f"{rng.integers(100, 300)},{rng.uniform(40, 240):.1f},{rng.uniform(20, 99):.1f},{rng.uniform(2, 9):.2f},"
            f"{rng.uniform(3.2, 6.1):.4f},{rng.integers(60, 124)},{rng.uniform(25, 346):.1f}"
        )
    return rows


# ------------------------------------------------------------------------------------ extract


def test_file_uris_resolve_against_the_project_root(tmp_path: Path) -> None:
    assert resolve_local_path("file://include/data/diabetes.csv") == DATA / "diabetes.csv"
    assert resolve_local_path("file://x.csv", base_dir=tmp_path) == tmp_path / "x.csv"
    assert resolve_local_path(f"file://{tmp_path}/y.csv") == tmp_path / "y.csv"


def test_unsupported_or_missing_sources_fail_clearly(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="unsupported data source 'ftp://x/y.csv'"),
        open_source("ftp://x/y.csv"),
    ):
        pass
    with pytest.raises(FileNotFoundError, match="no such file"), open_source(f"file://{tmp_path}/nope.csv"):
        pass
    with pytest.raises(ValueError, match="needs an s3_client"), open_source("s3://b/k.csv"):
        pass


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    uri = write_csv(tmp_path / "d.csv", ["59,2,32.1"], header="age,sex,bmi")
    with (
        open_source(uri) as stream,
        pytest.raises(DataValidationError, match=r"source lacks columns \['bp', 's1'"),
    ):
        next(iter_csv_chunks(stream, chunk_size=10, columns=HEADER.split(",")))


def test_extra_source_columns_are_dropped(tmp_path: Path) -> None:
    uri = write_csv(tmp_path / "d.csv", [GOOD_ROWS[0] + ",note"], header=HEADER + ",comment")
    with open_source(uri) as stream:
        chunk = next(iter_csv_chunks(stream, chunk_size=10, columns=HEADER.split(",")))
    assert list(chunk.frame.columns) == HEADER.split(",")


# ----------------------------------------------------------------------------------- validate


def test_malformed_rows_are_quarantined_with_reasons(
    tmp_path: Path, s3: Any, s3_read: Any, dev_ctx: RunContext
) -> None:
    rows = list(GOOD_ROWS[:40])
    rows[2] = (
        rows[2].replace("32.1", "abc", 1)
        if "32.1" in rows[2]
        else "59,2,abc,101.0,157,93.2,38.0,4.0,4.8598,87,151"
    )
    rows[5] = "48,1,,87.0,183,103.2,70.0,3.0,3.8918,69,75"  # missing bmi
    rows[7] = "72,2,99.0,93.0,156,93.6,41.0,4.0,4.6728,85,141"  # bmi above max
    rows[9] = "50.5,1,23.0,101.0,192,125.4,52.0,4.0,4.2905,80,97"  # not an integer
    rows[11] = "48,1,21.6,87.0,183,103.2,70.0,3.0,3.8918,69,75,extra"  # too many fields
    rows[13] = "-5,3,21.6,87.0,183,103.2,70.0,3.0,3.8918,69,NaN"  # three problems in one row
    cfg = cfg_with(source_uri=write_csv(tmp_path / "d.csv", rows), max_bad_row_share=0.5)

    result = run_etl(cfg, dev_ctx, s3_client=s3)

    assert (result.total_rows, result.bad_rows) == (40, 6)
    assert sum(result.rows.values()) == 34
    quarantine = s3_read.text(result.quarantine_uri)
    lines = quarantine.splitlines()
    assert lines[0] == "line,reason," + HEADER
    reasons = {int(row[0]): row[1] for row in csv.reader(lines[1:])}
    assert reasons == {
        4: "bmi: 'abc' is not a finite number",
        7: "bmi: missing value",
        9: "bmi: 99.0 above max 60",
        11: "age: 50.5 is not an integer",
        13: "expected 11 fields, got 12",
        15: "age: -5 below min 0; sex: 3 above max 2; target: missing value",
    }
    # the bad rows keep their original values for inspection
    assert lines[3].endswith(",72,2,99.0,93.0,156,93.6,41.0,4.0,4.6728,85,141")


def test_too_many_bad_rows_fail_after_uploading_the_quarantine(
    tmp_path: Path, s3: Any, s3_read: Any, dev_ctx: RunContext
) -> None:
    rows = list(GOOD_ROWS[:50])
    for i in (1, 3, 5):
        rows[i] = rows[i].replace(rows[i].split(",")[2], "999", 1)
    cfg = cfg_with(source_uri=write_csv(tmp_path / "d.csv", rows))  # bound 2 %: 3/50 = 6 % is too many

    with pytest.raises(DataValidationError) as info:
        run_etl(cfg, dev_ctx, s3_client=s3)
    message = str(info.value)
    assert "3 of 50 rows (6.0%) failed validation, above the allowed 2.0% (data.max_bad_row_share)" in message
    assert "line 3: bmi: 999 above max 60" in message
    prefix = "s3://mlpipeline-dev/diabetes_dnn/manual__2024-06-01T02-00-00-00-00/"
    assert s3_read.keys(prefix) == ["diabetes_dnn/manual__2024-06-01T02-00-00-00-00/quarantine/bad_rows.csv"]
    assert len(s3_read.text(prefix + "quarantine/bad_rows.csv").splitlines()) == 4


def test_empty_source_fails(tmp_path: Path, s3: Any, dev_ctx: RunContext) -> None:
    cfg = cfg_with(source_uri=write_csv(tmp_path / "d.csv", []))
    with pytest.raises(DataValidationError, match="no data rows"):
        run_etl(cfg, dev_ctx, s3_client=s3)
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataValidationError, match="expected a header line"):
        run_etl(cfg_with(source_uri=f"file://{tmp_path}/e.csv"), dev_ctx, s3_client=s3)


def test_nullable_columns_take_their_fill_value(tmp_path: Path) -> None:
    cfg = load_config(
        "diabetes_dnn", "dev", {"data": {"columns": {"bp": {"nullable": True, "fill_value": 90}}}}
    )
    uri = write_csv(tmp_path / "d.csv", ["48,1,21.6,,183,103.2,70.0,3.0,3.8918,69,75"])
    with open_source(uri) as stream:
        chunk = next(iter_csv_chunks(stream, chunk_size=10, columns=list(cfg.data.columns)))
    checked = validate_chunk(chunk, cfg.data.columns)
    assert len(checked.bad) == 0 and checked.good["bp"].tolist() == [90.0]
    assert str(checked.good["age"].dtype) == "Int64"


# -------------------------------------------------------------------------------------- split


def _assignment(text: str, cfg: PipelineConfig, chunk_size: int) -> dict[str, str]:
    """Row text -> channel, through the same chunked path the ETL takes."""
    result: dict[str, str] = {}
    with io.BytesIO(text.encode()) as stream:
        for chunk in iter_csv_chunks(stream, chunk_size=chunk_size, columns=list(cfg.data.columns)):
            good = validate_chunk(chunk, cfg.data.columns).good
            channels = assign_channels(row_keys(good, list(cfg.data.columns)), cfg.data.split)
            for row, channel in zip(
                chunk.frame.loc[good.index].itertuples(index=False), channels, strict=True
            ):
                result[",".join(row)] = channel
    return result


def test_split_is_reproducible_across_runs_chunk_sizes_and_row_order(dev_cfg: PipelineConfig) -> None:
    text = "\n".join([HEADER, *GOOD_ROWS]) + "\n"
    reference = _assignment(text, dev_cfg, chunk_size=1000)
    assert len(reference) == 442
    for chunk_size in (13, 64):
        assert _assignment(text, dev_cfg, chunk_size) == reference
    shuffled = list(GOOD_ROWS)
    np.random.default_rng(1).shuffle(shuffled)
    assert _assignment("\n".join([HEADER, *shuffled]) + "\n", dev_cfg, 50) == reference
    counts = {c: list(reference.values()).count(c) for c in ("train", "validation", "test")}
    assert 0.62 < counts["train"] / 442 < 0.78 and counts["validation"] > 40 and counts["test"] > 40


def test_split_changes_with_the_seed(dev_cfg: PipelineConfig) -> None:
    text = "\n".join([HEADER, *GOOD_ROWS]) + "\n"
    other = load_config("diabetes_dnn", "dev", {"data": {"split": {"seed": 7}}})
    a, b = _assignment(text, dev_cfg, 100), _assignment(text, other, 100)
    assert sum(a[k] != b[k] for k in a) > 100


def test_split_by_id_ignores_value_corrections(tmp_path: Path) -> None:
    cfg = load_config("diabetes_dnn", "dev", {"data": {"id_column": "pid"}})
    rows = [f"p{i}," + r for i, r in enumerate(GOOD_ROWS[:60])]
    corrected = [r.replace(",151", ",152") for r in rows]

    def channels(lines: list[str]) -> list[str]:
        with io.BytesIO(("pid," + HEADER + "\n" + "\n".join(lines)).encode()) as stream:
            chunk = next(iter_csv_chunks(stream, chunk_size=100, columns=["pid", *cfg.data.columns]))
        good = validate_chunk(chunk, cfg.data.columns, id_column="pid").good
        return assign_channels(row_keys(good, ["pid"]), cfg.data.split)

    assert channels(rows) == channels(corrected)


# ------------------------------------------------------------------------------- full runs


def test_etl_on_the_demo_data(s3: Any, s3_read: Any, dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    result = run_etl(dev_cfg, dev_ctx, s3_client=s3)

    prefix = "s3://mlpipeline-dev/diabetes_dnn/manual__2024-06-01T02-00-00-00-00/"
    assert result.prefix == prefix
    assert (result.total_rows, result.bad_rows, result.quarantine_uri) == (442, 0, None)
    assert sum(result.rows.values()) == 442
    assert result.channels["train"] == prefix + "train/"
    train_labels, train_features = read_algorithm_csv(s3_read.text(prefix + "train/data.csv").encode())
    assert train_features.shape == (result.rows["train"], 10) and train_labels is not None
    assert 25 <= train_labels.min() and train_labels.max() <= 346  # the label is first
    _, test_features = read_algorithm_csv(
        s3_read.text(prefix + "test_features/data.csv").encode(), has_label=False
    )
    assert test_features.shape == (result.rows["test"], 10)
    labels = s3_read.text(prefix + "test_labels/data.csv").splitlines()
    test_labels, test_rows = read_algorithm_csv(s3_read.text(prefix + "test/data.csv").encode())
    assert [float(v) for v in labels] == test_labels.tolist()
    np.testing.assert_array_equal(test_rows, test_features)
    manifest = json.loads(s3_read.text(result.manifest_uri))
    assert manifest["rows"] == result.rows and manifest["source_uri"] == dev_cfg.data.source_uri
    assert EtlResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_etl_is_idempotent_for_a_retried_run(
    s3: Any, s3_read: Any, dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    first = run_etl(dev_cfg, dev_ctx, s3_client=s3)
    train = s3_read.text(first.train_uri + "data.csv")
    second = run_etl(dev_cfg, dev_ctx, s3_client=s3)
    assert second == first and s3_read.text(second.train_uri + "data.csv") == train


def test_prod_shards_train_per_host(
    s3: Any, s3_read: Any, prod_cfg: PipelineConfig, prod_ctx: RunContext
) -> None:
    result = run_etl(prod_cfg, prod_ctx, s3_client=s3)
    keys = s3_read.keys(result.train_uri)
    assert [k.rsplit("/", 1)[1] for k in keys] == ["data-000.csv", "data-001.csv"]
    sizes = [len(s3_read.text(f"s3://mlpipeline-prod/{k}").splitlines()) for k in keys]
    assert sum(sizes) == result.rows["train"] and min(sizes) > 0.35 * result.rows["train"]
    assert result.train_files == 2


def test_extract_from_s3(s3: Any, dev_ctx: RunContext) -> None:
    s3.put_object(Bucket="mlpipeline-dev", Key="raw/diabetes.csv", Body=(DATA / "diabetes.csv").read_bytes())
    result = run_etl(cfg_with(source_uri="s3://mlpipeline-dev/raw/diabetes.csv"), dev_ctx, s3_client=s3)
    assert result.total_rows == 442 and result.bad_rows == 0


@pytest.fixture
def http_data_server() -> Iterator[str]:
    """A local HTTP server over include/data on 127.0.0.1, in a thread."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(DATA))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_extract_over_http(
    http_data_server: str, s3: Any, s3_read: Any, dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    from_file = run_etl(dev_cfg, dev_ctx, s3_client=s3)
    train_from_file = s3_read.text(from_file.train_uri + "data.csv")
    from_http = run_etl(cfg_with(source_uri=f"{http_data_server}/diabetes.csv"), dev_ctx, s3_client=s3)
    assert from_http.rows == from_file.rows
    assert s3_read.text(from_http.train_uri + "data.csv") == train_from_file


def test_http_errors_surface(http_data_server: str, s3: Any, dev_ctx: RunContext) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError, match="404"):
        run_etl(cfg_with(source_uri=f"{http_data_server}/missing.csv"), dev_ctx, s3_client=s3)


def test_chunked_reading_of_a_bigger_file(tmp_path: Path) -> None:
    rows = generated_rows(30_000)
    uri = write_csv(tmp_path / "big.csv", rows)
    cfg = cfg_with()
    with open_source(uri) as stream:
        sizes = [
            len(c.frame) for c in iter_csv_chunks(stream, chunk_size=4_000, columns=list(cfg.data.columns))
        ]
    assert sizes == [4_000] * 7 + [2_000]


class _DiscardingS3:
    """Accepts uploads without keeping them, so only the ETL's own memory is measured
    (moto would hold every uploaded byte in this process)."""

    def upload_file(self, filename: str, bucket: str, key: str) -> None:
        assert Path(filename).stat().st_size > 0

    def put_object(self, **kwargs: Any) -> None:
        pass


def _peak_bytes(cfg: PipelineConfig, ctx: RunContext) -> tuple[int, EtlResult]:
    tracemalloc.start()
    try:
        result = run_etl(cfg, ctx, s3_client=_DiscardingS3())
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_input_grows(tmp_path: Path, dev_ctx: RunContext) -> None:
    """Peak Python allocations for 4x the rows stay about the same at a fixed chunk size."""
    warm_up = write_csv(tmp_path / "warm.csv", generated_rows(300, seed=1))
    _peak_bytes(cfg_with(source_uri=warm_up, chunk_size=1_000), dev_ctx)  # imports, caches
    small = write_csv(tmp_path / "small.csv", generated_rows(2_000, seed=2))
    large = write_csv(tmp_path / "large.csv", generated_rows(8_000, seed=3))
    small_peak, _ = _peak_bytes(cfg_with(source_uri=small, chunk_size=1_000), dev_ctx)
    large_peak, result = _peak_bytes(cfg_with(source_uri=large, chunk_size=1_000), dev_ctx)
    assert result.total_rows == 8_000 and result.bad_rows == 0
    assert 0.6 < result.rows["train"] / 8_000 < 0.8
    assert large_peak < 1.3 * small_peak, (small_peak, large_peak)


def test_batch_input_keeps_the_id_first(
    s3: Any, s3_read: Any, dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    result = prepare_batch_input(dev_cfg, dev_ctx, s3_client=s3)
    assert (result.rows, result.bad_rows, result.quarantine_uri) == (100, 0, None)
    lines = s3_read.text(result.uri + "data.csv").splitlines()
    source = (DATA / "diabetes_batch.csv").read_text().splitlines()[1:]
    assert [line.split(",")[0] for line in lines] == [line.split(",")[0] for line in source]
    assert all(len(line.split(",")) == 11 for line in lines)
