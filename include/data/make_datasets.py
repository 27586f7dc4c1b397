"""Regenerate the demo data sets in this folder from scikit-learn's bundled copy of the diabetes data.

Committed so the CSVs are reproducible byte for byte: ``python include/data/make_datasets.py``.
The raw (unscaled) variant is used on purpose: the pipeline's schema checks ranges in real units
(years, mg/dl, mm Hg) and the ETL/training steps do their own scaling, as they would on real data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
INTEGER_COLUMNS = {"age", "sex", "s1", "s6", "target"}
BATCH_ROWS = 100
BATCH_SEED = 20240601


def _format(value: float, integer: bool) -> str:
    """Integers without a trailing .0, floats in their shortest exact form, so diffs stay readable."""
    return str(int(value)) if integer else repr(float(value))


def make_training_csv(path: Path) -> int:
    """Write the 442 labelled rows with a header; returns the row count."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(scaled=False, as_frame=True).frame
    columns = [*FEATURES, "target"]
    lines = [",".join(columns)]
    for row in frame[columns].itertuples(index=False):
        lines.append(",".join(_format(v, c in INTEGER_COLUMNS) for c, v in zip(columns, row, strict=True)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(frame)


def make_batch_csv(path: Path, rows: int = BATCH_ROWS, seed: int = BATCH_SEED) -> int:
    """Write a deterministic sample of feature rows (no label) with an ``id`` for batch scoring.

    The id is the row's index in scikit-learn's copy, so a score can be traced back to its source.
    """
    import numpy as np
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(scaled=False, as_frame=True).frame
    picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
    lines = [",".join(["id", *FEATURES])]
    for index in picked:
        row = frame.iloc[int(index)]
        values = [_format(row[c], c in INTEGER_COLUMNS) for c in FEATURES]
        lines.append(",".join([str(int(index)), *values]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    n = make_training_csv(args.out_dir / "diabetes.csv")
    b = make_batch_csv(args.out_dir / "diabetes_batch.csv")
    print(f"wrote {n} training rows and {b} batch rows to {args.out_dir}")


if __name__ == "__main__":
    main()
