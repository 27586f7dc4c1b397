"""Result files: JSON documents written atomically, and the drift plot a person looks at first.

Files appear under their final name only when complete (write to a temporary name, then
rename), because SageMaker uploads ``output_path`` when the job ends and a half-written
``constraint_violations.json`` read by the pipeline would be worse than none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checks import DriftResult

MAX_PLOTS = 12


def write_json(path: Path, document: Any) -> Path:
    """Pretty JSON (Model Monitor's files are indented), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def plot_drift(path: Path, drift: list[DriftResult], message: str | None = None) -> Path:
    """One panel per drifting feature, baseline vs current; a short notice when none drift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    drifting = [d for d in drift if d.drifted][:MAX_PLOTS]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not drifting:
        fig, ax = plt.subplots(figsize=(5, 1.6))
        ax.axis("off")
        checked = f"{len(drift)} feature(s) compared" if drift else "no feature compared"
        ax.text(0.5, 0.5, message or f"No baseline drift detected\n({checked})", ha="center", va="center")
    else:
        cols = min(3, len(drifting))
        rows = (len(drifting) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
        for ax in axes.flat[len(drifting) :]:
            ax.axis("off")
        for ax, d in zip(axes.flat, drifting, strict=False):
            if d.kind == "numerical":
                lo = float(min(d.baseline.min(), d.current.min()))
                hi = float(max(d.baseline.max(), d.current.max()))
                edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 21)
                ax.hist(
                    d.baseline, bins=edges, density=True, alpha=0.55, label=f"baseline (n={d.n_baseline})"
                )
                ax.hist(d.current, bins=edges, density=True, alpha=0.55, label=f"current (n={d.n_current})")
                ax.set_ylabel("density")
            else:
                keys = sorted(set(d.baseline) | set(d.current), key=lambda k: -d.baseline.get(k, 0.0))[:15]
                x = np.arange(len(keys))
                ax.bar(
                    x - 0.2, [d.baseline.get(k, 0.0) for k in keys], 0.4, label=f"baseline (n={d.n_baseline})"
                )
                ax.bar(
                    x + 0.2, [d.current.get(k, 0.0) for k in keys], 0.4, label=f"current (n={d.n_current})"
                )
                ax.set_xticks(x, [str(k)[:12] for k in keys], rotation=45, ha="right", fontsize=7)
                ax.set_ylabel("frequency")
            ax.set_title(f"{d.feature}: {d.method} {d.distance:.3f} > {d.threshold:g}", fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle("Baseline drift", fontsize=11)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path
