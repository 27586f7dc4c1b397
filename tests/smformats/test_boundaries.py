"""The import rule around the formats package (DESIGN.md section 2), checked on the source.

``smformats`` is a leaf: it imports neither ``include`` nor ``localmaker`` and nothing heavy at
module level (DAG files import the pipeline library, which imports it). ``localmaker`` (built-in
images included) imports nothing from ``include``; ``include`` nothing from ``localmaker``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, at module level) for every absolute import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno, id(node) in top))
    return found


def _offenders(package: str, forbidden: tuple[str, ...], top_level_only: bool = False) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module, line, at_top in _imports(path):
            if module.split(".")[0] in forbidden and (at_top or not top_level_only):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("smformats", ("include", "localmaker", "dags")),
        ("localmaker", ("include", "dags")),
        ("include", ("localmaker",)),
    ],
)
def test_import_rule(package: str, forbidden: tuple[str, ...]) -> None:
    assert _offenders(package, forbidden) == []


def test_smformats_imports_nothing_heavy_at_module_level() -> None:
    assert _offenders("smformats", ("numpy", "pandas", "PIL", "sagemaker", "tensorflow"), top_level_only=True) == []


def test_the_formats_live_only_in_smformats() -> None:
    assert not (ROOT / "include" / "mlpipeline" / "formats").exists()


def test_importing_smformats_loads_neither_side() -> None:
    """Nor protobuf: the frame splitter (localmaker's batch transform) needs no message classes."""
    code = (
        "import sys, smformats.recordio, smformats.csv, smformats.imagelist; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'include', 'localmaker', 'numpy', 'pandas', 'PIL', 'google'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
