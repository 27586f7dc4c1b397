"""What the fault suite measured, as counts: requests sent / failed, writes acknowledged / lost, orphans left.

Runs the fault suite (``tests/faults``, real localmaker processes attacked with idle gaps, kill -9 of
serve processes under load, kill -9 of localmaker right after acknowledged S3 writes, kill -9 with
children running) with ``LOCALMAKER_FAULTS_REPORT`` set, so each scenario appends the numbers it
asserted on; then prints them as a table and writes bench/results/faults.json. The suite's own
assertions are the targets (0 failed, 0 lost, 0 orphans); this script only reports.
Environment: BENCH_FAULTS_SELECT (a pytest ``-k`` expression to run part of the suite).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COLUMNS = ("sent", "failed", "in_flight", "acknowledged", "lost", "children", "orphans", "side_effects_after_kill")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.jsonl"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "faults", "tests/faults"]
        if os.environ.get("BENCH_FAULTS_SELECT"):
            cmd += ["-k", os.environ["BENCH_FAULTS_SELECT"]]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "LOCALMAKER_FAULTS_REPORT": str(report)},
                              capture_output=True, text=True)
        seconds = time.monotonic() - t0
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "(no output)"
    used = [c for c in COLUMNS if any(c in r for r in rows)]
    width = max([len("scenario"), *(len(r["scenario"]) for r in rows)])
    print(f"{'scenario':<{width}}  " + "  ".join(f"{c:>12}" for c in used))
    for r in rows:
        print(f"{r['scenario']:<{width}}  " + "  ".join(f"{r.get(c, ''):>12}" for c in used))
    totals = {c: sum(int(r.get(c, 0)) for r in rows) for c in used}
    print(f"{'total':<{width}}  " + "  ".join(f"{totals[c]:>12}" for c in used))
    print(f"fault suite: {summary} ({seconds:.0f} s)")
    out = HERE / "results" / "faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scenarios": rows, "totals": totals, "pytest": summary,
                               "seconds": round(seconds, 1)}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    if proc.returncode != 0:
        print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
