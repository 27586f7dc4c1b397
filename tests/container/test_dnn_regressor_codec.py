"""The CSV codec's fast paths against the per-cell path they stand in for.

``decode_csv`` tries the whole-body numpy parser first (plain decimals), then numpy's C text
parser, and only then the cell-by-cell path that names the bad row and column. Whatever path
answers, the result must be exactly what the cell-by-cell path (``decode_csv_cells``) gives: the
same float64 bits for a valid body, the same status and message for an invalid one.
"""

from __future__ import annotations

import numpy as np
import pytest
from dnn_regressor.payloads import (  # noqa: E402  (after the path setup above)
    CSV,
    JSON,
    PayloadError,
    decode_csv,
    decode_csv_cells,
    encode,
    parse_plain_csv,
)

from tests.container import dnn_regressor_support  # noqa: F401  (puts the container on sys.path)

# --- random bodies -----------------------------------------------------------------------------


def _plain_cell(rng: np.random.Generator) -> str:
    """A field the fast path is meant to take: [+-]digits[.digits], up to 15 digits."""
    kind = rng.integers(0, 7)
    if kind == 0:
        return str(int(rng.integers(-(10**9), 10**9)))
    if kind == 1:
        return f"{rng.normal() * 10.0 ** int(rng.integers(-6, 8)):.{int(rng.integers(0, 9))}f}"
    if kind == 2:
        return "".join(rng.choice(list("0123456789"), int(rng.integers(1, 16))))
    if kind == 3:  # every digit count and dot position up to 15 digits
        digits = "".join(rng.choice(list("0123456789"), int(rng.integers(1, 16))))
        dot = int(rng.integers(0, len(digits) + 1))
        sign = str(rng.choice(["", "", "-", "+"]))
        return sign + digits[:dot] + "." + digits[dot:]
    if kind == 4:
        return str(rng.choice(["-0", "+0", ".5", "5.", "-.5", "+.5", "0.", "00", "-00.000", "0000000000000.1"]))
    if kind == 5:
        return f"{float(rng.normal()):.15g}" if rng.random() < 0.5 else f"{float(rng.normal()) * 1e3:.6f}"
    return str(int(rng.integers(0, 10)))


def _odd_cell(rng: np.random.Generator) -> str:
    """Fields for the slower paths: valid-but-not-plain, and invalid."""
    return str(
        rng.choice(
            [
                repr(float(rng.normal())),  # 16-17 digits
                f"{rng.normal():e}",
                "1E+05",
                " 1.5",
                "2 ",
                "\t3",
                "1_000",
                "nan",
                "NaN",
                "inf",
                "-Infinity",
                "1e400",
                "",
                "abc",
                "x1",
                "+-1",
                "--1",
                "1.2.3",
                ".",
                "-",
                "+",
                "1-2",
                "1+",
                "5e",
                '"1.5"',
                '"2',
                "0x10",
                "١",
                "1\x0c",
                "12345678901234567",
                "1234567890123456",
                "-123456789012345.6",
            ]
        )
    )


def _body(rng: np.random.Generator, width: int, plain: bool) -> bytes:
    rows = int(rng.integers(1, 7))
    lines = []
    for _ in range(rows):
        cells = [_plain_cell(rng) if plain or rng.random() < 0.8 else _odd_cell(rng) for _ in range(width)]
        lines.append(",".join(cells))
    if not plain:  # row-level damage
        damage = rng.integers(0, 12)
        i = int(rng.integers(0, rows))
        if damage == 0:
            lines[i] += "," + _plain_cell(rng)  # one value too many
        elif damage == 1 and width > 1:
            lines[i] = lines[i].rsplit(",", 1)[0]  # one too few
        elif damage == 2:
            lines.insert(i, "")  # a blank line
        elif damage == 3:
            lines.insert(0, ",".join(f"x{j}" for j in range(width)))  # a header
        elif damage == 4:
            lines[i] += ","  # trailing comma
        elif damage == 5:
            lines.insert(i, "   ")
    sep = str(rng.choice(["\n", "\n", "\r\n", "\r"])) if not plain else str(rng.choice(["\n", "\n", "\r\n"]))
    text = sep.join(lines) + str(rng.choice(["", "\n", "\n\n", sep]))
    body = text.encode()
    if not plain and rng.random() < 0.05:
        body = b"\xef\xbb\xbf" + body  # a UTF-8 BOM
    return body


def _outcome(fn, body: bytes, names: list[str]) -> tuple[str, object]:
    try:
        return "ok", fn(body, names)
    except PayloadError as exc:
        return "error", (exc.status, exc.message)


def _assert_same(body: bytes, names: list[str]) -> tuple[str, object]:
    got, reference = _outcome(decode_csv, body, names), _outcome(decode_csv_cells, body, names)
    assert got[0] == reference[0], (body, got, reference)
    if got[0] == "ok":
        assert got[1].dtype == reference[1].dtype == np.float64
        # bit-for-bit, so -0.0 and the last ulp count
        assert np.array_equal(got[1].view(np.int64), reference[1].view(np.int64)), (body, got[1], reference[1])
    else:
        assert got[1] == reference[1], (body, got[1], reference[1])
    return reference


@pytest.mark.parametrize("seed", range(4))
def test_plain_bodies_take_the_fast_path_and_match_the_cell_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(1500):
        width = int(rng.integers(1, 6))
        names = [f"f{j}" for j in range(width)]
        body = _body(rng, width, plain=True)
        fast = parse_plain_csv(body, width)
        assert fast is not None, body  # the generator only makes plain bodies
        kind, reference = _assert_same(body, names)
        assert kind == "ok"
        assert np.array_equal(fast.view(np.int64), reference.view(np.int64)), body


@pytest.mark.parametrize("seed", range(4))
def test_other_bodies_get_the_cell_paths_value_or_exact_error(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(1500):
        width = int(rng.integers(1, 6))
        names = [f"f{j}" for j in range(width)]
        body = _body(rng, width, plain=False)
        kind, reference = _assert_same(body, names)
        outcomes[kind] += 1
        if kind == "error":
            assert parse_plain_csv(body, width) is None, (body, reference)
    # both kinds really occur, so neither half of the claim is vacuous
    assert outcomes["ok"] > 200 and outcomes["error"] > 200, outcomes


def test_large_plain_body_matches_and_known_errors_keep_their_wording() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1000, 8)) * np.arange(1, 9)
    names = [f"x{j}" for j in range(8)]
    body = ("\n".join(",".join(f"{v:.6f}" for v in row) for row in x) + "\n").encode()
    assert parse_plain_csv(body, 8) is not None
    _assert_same(body, names)
    np.testing.assert_allclose(decode_csv(body, names), x, atol=5e-7)
    cases = {
        b"1,2,3\n4,5,6,7\n": "row 2 has 4 values, expected 3 features",
        b"1,2,3\n4,,6\n": "row 2, column 2 ('x1') is empty; send a number",
        b"1,2,3\n\n4,5,6\n": "row 2 is empty; send 3 comma-separated features per line",
        b"1,2,3\n4,5,nan\n": "row 2, column 3 ('x2') is 'nan'; send a finite number",
        b"1,2,3\n4,-,6\n": "row 2, column 2 ('x1'): '-' is not a number",
        b"1,2,3\n4,1.2.3,6\n": "row 2, column 2 ('x1'): '1.2.3' is not a number",
        b"\n\n": "the CSV body is empty",
    }
    for bad, message in cases.items():
        with pytest.raises(PayloadError) as caught:
            decode_csv(bad, names[:3])
        assert message in caught.value.message and caught.value.status == 400
        assert parse_plain_csv(bad, 3) is None


def test_bodies_longer_than_a_chunk_match_and_a_late_odd_field_falls_back() -> None:
    rng = np.random.default_rng(8)
    names = [f"x{j}" for j in range(8)]
    cells = [[_plain_cell(rng) for _ in range(8)] for _ in range(5000)]  # 40,000 fields: 3 chunks
    body = ("\n".join(",".join(row) for row in cells) + "\n").encode()
    assert parse_plain_csv(body, 8) is not None
    _assert_same(body, names)
    cells[4321][5] = "1e-3"  # valid, not plain, in the last chunk
    body = ("\n".join(",".join(row) for row in cells) + "\n").encode()
    assert parse_plain_csv(body, 8) is None
    _assert_same(body, names)
    cells[4321][5] = "--1"  # invalid: the per-cell path names it
    body = ("\n".join(",".join(row) for row in cells) + "\n").encode()
    kind, (status, message) = _assert_same(body, names)
    assert kind == "error" and message == "row 4322, column 6 ('x5'): '--1' is not a number"


def _old_encode(predictions: np.ndarray, accept: str) -> bytes:
    """The encoder before the one-call formatting (per-value str.format)."""
    formatted = list(map("{:.9g}".format, np.asarray(predictions, dtype=np.float64).reshape(-1).tolist()))
    if accept == CSV:
        return ("\n".join(formatted) + "\n").encode()
    return ('{"predictions": [' + ", ".join(formatted) + "]}").encode()


def test_encode_writes_exactly_what_the_per_value_formatting_wrote() -> None:
    rng = np.random.default_rng(11)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4e38, 1.0, -1.5, 123456789.0], np.float32)
    for n in (0, 1, 2, 7, 1000):
        values = (rng.normal(size=n) * 10.0 ** rng.integers(-30, 30, size=n)).astype(np.float32)
        for predictions in (values, np.concatenate([values, specials])):
            for accept in (CSV, JSON):
                assert encode(predictions, accept) == _old_encode(predictions, accept)
    assert encode(np.array([1.5, -0.25], np.float32), CSV) == b"1.5\n-0.25\n"
    assert encode(np.array([1.5, -0.25], np.float32), JSON) == b'{"predictions": [1.5, -0.25]}'
