"""The two programs of the image: ``baseline`` (training data -> statistics + constraints) and
``analyze`` (a window of captured traffic + the baseline -> statistics + violations).

Exit codes follow the Processing-job contract: 0 whenever the analysis ran, violations
included (they are results, and Model Monitor's own analyzer exits 0 with them); non-zero only
when the input is unusable (2, ``ClientError:``) or we have a bug (1, ``AlgorithmError:``), with
a one-line reason in ``$SAGEMAKER_BASE_DIR/output/message`` that SageMaker turns into the job's
``FailureReason``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings, load_settings
from .errors import MonitorError, failure_reason, write_message
from .table import Table, data_files, read_csv_files, read_json_lines

USAGE = """usage: {prog}

Configured by environment variables (Model Monitor's bring-your-own-container contract):
  dataset_source, output_path, dataset_format, baseline_statistics, baseline_constraints,
  start_time, end_time, analysis_type (DATA_QUALITY), post_analytics_processor_script,
  plus feature_names, label_column, drift_threshold, drift_method.
See the container's README.md.
"""


def _log(message: str) -> None:
    print(message, flush=True)


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MonitorError(f"{what} {path} cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise MonitorError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("features"), list):
        raise MonitorError(f"{what} {path} has no 'features' list; is it a Model Monitor {what} file?")
    return document


def _read_tabular(settings: Settings, files: list[Path], names: list[str] | None) -> Table:
    """CSV or JSON-lines input. Header-less CSV columns take ``names`` by position."""
    fmt = settings.dataset_format
    if fmt.kind == "json":
        return read_json_lines(files)
    if fmt.header or settings.feature_names:
        return read_csv_files(files, fmt.header, settings.feature_names)
    table = read_csv_files(files, header=False, feature_names=None)
    if names:
        rename = {f"_c{i}": n for i, n in enumerate(names)}
        table = Table(
            [rename.get(c, c) for c in table.columns],
            {rename.get(c, c): v for c, v in table.values.items()},
            table.n_rows,
        )
    return table


def run_baseline(settings: Settings) -> dict[str, Path]:
    """Training data -> statistics.json + constraints.json."""
    from .capture import build_table, read_captures
    from .report import write_json
    from .stats import classify_table, dataset_statistics, suggest_constraints

    files = data_files(settings.dataset_source)
    if not files:
        raise MonitorError(
            f"no data files under dataset_source={settings.dataset_source}; the baseline needs the "
            "training data set (CSV files) there"
        )
    _log(f"baseline: reading {len(files)} file(s) from {settings.dataset_source}")
    if settings.dataset_format.kind == "capture":
        captured = read_captures(files, settings.dataset_source, settings.dataset_format.capture_indexes)
        table = build_table(captured.rows, settings.feature_names or [])
    else:
        table = _read_tabular(settings, files, None)
    if table.n_rows == 0:
        raise MonitorError(f"the files under {settings.dataset_source} hold no data rows")
    if settings.label_column:
        if settings.label_column not in table.columns:
            raise MonitorError(
                f"label_column={settings.label_column} is not a column of the baseline data "
                f"(columns: {', '.join(table.columns)})"
            )
        table = table.drop(settings.label_column)
        _log(f"baseline: label column '{settings.label_column}' excluded from the features")
    typed = classify_table(table)
    statistics = dataset_statistics(table, typed)
    constraints = suggest_constraints(statistics, settings.effective_drift_threshold)
    out = settings.output_path
    written = {
        "statistics": write_json(out / "statistics.json", statistics),
        "constraints": write_json(out / "constraints.json", constraints),
    }
    _log(f"baseline: {table.n_rows} rows, {len(table.columns)} features")
    for feat in statistics["features"]:
        stats = feat.get("numerical_statistics") or feat.get("string_statistics")
        common = stats["common"]
        detail = (
            f"mean={stats['mean']:.4g} std={stats['std_dev']:.4g} min={stats['min']:.4g} max={stats['max']:.4g}"
            if "mean" in stats
            else f"distinct={int(stats.get('distinct_count', 0))}"
        )
        _log(
            f"  {feat['name']:<24} {feat['inferred_type']:<10} present={common['num_present']:<7} "
            f"missing={common['num_missing']:<6} {detail}"
        )
    _log(f"baseline: wrote {written['statistics']} and {written['constraints']}")
    return written


def run_analyze(settings: Settings) -> dict[str, Path]:
    """Captured traffic (or CSV) in the window + baseline -> statistics, violations, report, plot."""
    from .capture import CaptureResult, build_table, read_captures
    from .checks import evaluate
    from .report import plot_drift, write_json
    from .stats import classify_table, dataset_statistics

    started = time.monotonic()
    base_stats = (
        _load_json(settings.baseline_statistics, "statistics") if settings.baseline_statistics else None
    )
    constraints = (
        _load_json(settings.baseline_constraints, "constraints") if settings.baseline_constraints else None
    )
    baseline_names = [f["name"] for f in (constraints or base_stats or {}).get("features", []) if "name" in f]
    for note in settings.notes:
        _log(f"analyze: note: {note}")

    files = data_files(settings.dataset_source)
    if not settings.dataset_source.exists():
        _log(f"analyze: dataset_source {settings.dataset_source} does not exist; treating it as no data")
    fmt = settings.dataset_format
    captured = CaptureResult(files=len(files))
    if fmt.kind == "capture":
        captured = read_captures(
            files, settings.dataset_source, fmt.capture_indexes, settings.start_time, settings.end_time
        )
        table = build_table(captured.rows, baseline_names)
    else:
        table = _read_tabular(settings, files, baseline_names) if files else Table.empty()
    label = settings.label_column
    if label and label in table.columns and label not in baseline_names:
        table = table.drop(label)  # the label is not a feature, wherever it shows up
        _log(f"analyze: label column '{label}' excluded from the features")

    typed = classify_table(table)
    statistics = dataset_statistics(table, typed)
    evaluation = evaluate(
        table, typed, base_stats, constraints, settings.drift_threshold, settings.drift_method
    )
    out = settings.output_path
    empty_message = None
    if table.n_rows == 0:
        where = settings.window()
        empty_message = (
            f"No data to analyze: {captured.records} usable record(s) in window "
            f"[{where['start_time'] or '-inf'}, {where['end_time'] or '+inf'}) from {len(files)} file(s) "
            f"under {settings.dataset_source}"
        )
    report = _analysis_report(settings, captured, table, baseline_names, evaluation, started)
    written = {
        "statistics": write_json(out / "statistics.json", statistics),
        "violations": write_json(out / "constraint_violations.json", {"violations": evaluation.violations}),
        "report": write_json(out / "analysis_report.json", report),
        "plot": plot_drift(out / "drift_report.png", evaluation.drift, empty_message),
    }

    if empty_message:
        _log(f"analyze: {empty_message}; wrote statistics with item_count 0 and no violations")
    _log(
        f"analyze: {captured.files} file(s), {captured.records} record(s) in window, {table.n_rows} row(s), "
        f"{captured.outside_window} outside the window, {captured.malformed} malformed"
    )
    for reason, count in captured.malformed_reasons.most_common():
        _log(f"  malformed: {count} x {reason}")
    for drift in evaluation.drift:
        flag = "DRIFT" if drift.drifted else "ok"
        _log(
            f"  {drift.feature:<24} {drift.method:<16} distance={drift.distance:.4f} "
            f"threshold={drift.threshold:g} {flag}"
        )
    for note in evaluation.notes:
        _log(f"analyze: note: {note}")
    _log(f"analyze: {len(evaluation.violations)} violation(s)")
    for v in evaluation.violations:
        _log(f"  {v['constraint_check_type']:<22} {v['feature_name']}: {v['description']}")
    _log(f"analyze: wrote {', '.join(str(p) for p in written.values())}")
    return written


def _analysis_report(
    settings: Settings,
    captured: Any,
    table: Table,
    baseline_names: list[str],
    evaluation: Any,
    started: float,
) -> dict[str, Any]:
    """What the analysis saw, beyond Model Monitor's schema: counts, malformed lines, distances."""
    outputs = captured.output_numbers
    report: dict[str, Any] = {
        "program": "analyze",
        "image_version": __version__,
        "dataset_source": str(settings.dataset_source),
        "dataset_format": settings.dataset_format.kind,
        "window": settings.window(),
        "files": captured.files,
        "lines": captured.lines,
        "records": captured.records,
        "records_outside_window": captured.outside_window,
        "malformed_records": captured.malformed,
        "malformed_reasons": dict(captured.malformed_reasons),
        "malformed_examples": captured.malformed_examples,
        "rows": table.n_rows,
        "columns": table.columns,
        "baseline_columns": baseline_names,
        "inference_time_range": {
            "first": captured.first_time.strftime("%Y-%m-%dT%H:%M:%SZ") if captured.first_time else None,
            "last": captured.last_time.strftime("%Y-%m-%dT%H:%M:%SZ") if captured.last_time else None,
        },
        "endpoint_output": {
            "rows": captured.output_rows,
            "malformed": captured.output_malformed,
            "numeric_rows": len(outputs),
            "mean": sum(outputs) / len(outputs) if outputs else None,
            "min": min(outputs) if outputs else None,
            "max": max(outputs) if outputs else None,
        },
        "drift_method": settings.drift_method,
        "drift": {d.feature: d.summary() for d in evaluation.drift},
        "violations": len(evaluation.violations),
        "violations_by_check": dict(Counter(v["constraint_check_type"] for v in evaluation.violations)),
        "notes": list(settings.notes) + list(evaluation.notes),
        "seconds": round(time.monotonic() - started, 3),
    }
    return report


def run_post_analytics(script: Path) -> None:
    """Model Monitor's post-analytics hook: import the user's file, call ``postprocess_handler()``.

    It runs after the results are written (it may read or add to ``output_path``); an exception in
    it fails the job, with the script's error as the reason.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("post_analytics_processor", script)
    if spec is None or spec.loader is None:
        raise MonitorError(f"post_analytics_processor_script={script} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise MonitorError(f"post_analytics_processor_script {script} failed to load: {type(exc).__name__}: {exc}") from exc
    handler = getattr(module, "postprocess_handler", None)
    if not callable(handler):
        raise MonitorError(f"post_analytics_processor_script {script} defines no postprocess_handler()")
    _log(f"post-analytics: running postprocess_handler() from {script}")
    try:
        handler()
    except Exception as exc:
        traceback.print_exc()
        raise MonitorError(f"postprocess_handler() of {script} failed: {type(exc).__name__}: {exc}") from exc


#: ``analysis_type`` values this image computes; Model Monitor's other analyses need their own code
DATA_QUALITY = "DATA_QUALITY"


def analyzer_role(environ: Mapping[str, str]) -> str:
    """Which job Model Monitor's own analyzer image (``sagemaker-model-monitor-analyzer``) is asked for.

    That image has one entry point and no ContainerEntrypoint in the SDK's requests: a baselining
    job (``DefaultModelMonitor.suggest_baseline``) sends ``dataset_format``/``dataset_source``/
    ``output_path`` and no baseline; a monitoring job sends the baseline files (or reads captures).
    So: ``analyze`` when a baseline is given or the input is captured traffic, else ``baseline``.
    ``analysis_type`` other than DATA_QUALITY (MODEL_QUALITY, ...) is refused with a clear reason.
    """
    analysis = (environ.get("analysis_type") or DATA_QUALITY).strip().upper()
    if analysis != DATA_QUALITY:
        raise MonitorError(
            f"analysis_type={analysis} is not supported by this image: it computes data quality "
            f"(statistics, constraints, violations) only; leave analysis_type unset or {DATA_QUALITY}"
        )
    if (environ.get("baseline_constraints") or "").strip() or (environ.get("baseline_statistics") or "").strip():
        return "analyze"
    if '"sagemakerCaptureJson"' in (environ.get("dataset_format") or ""):
        return "analyze"
    return "baseline"


def main(program: str, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``baseline``, ``analyze`` or ``monitor`` (Model Monitor's analyzer: picks one of the two
    from the environment, see :func:`analyzer_role`); turn every failure into an exit code and a
    message file."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if any(a in ("-h", "--help") for a in args):
        print(USAGE.format(prog=program))
        return 0
    if args:
        _log(f"{program}: ignoring arguments {args}; configuration comes from environment variables")
    try:
        if program == "monitor":
            program = analyzer_role(env)
            _log(f"monitor: running {program} (Model Monitor analyzer contract)")
        settings = load_settings(env, program)
        if program == "baseline":
            run_baseline(settings)
        else:
            run_analyze(settings)
        if settings.post_analytics_processor_script:
            run_post_analytics(settings.post_analytics_processor_script)
    except MonitorError as exc:
        reason = failure_reason(exc)
        print(f"{program}: {reason}", file=sys.stderr, flush=True)
        write_message(reason, env)
        return 2
    except Exception as exc:  # our bug: keep the traceback in the log, the reason in the message
        traceback.print_exc()
        write_message(failure_reason(exc), env)
        return 1
    return 0
