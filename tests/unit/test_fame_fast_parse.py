"""The multi-threaded (pyarrow) first parse of FAME feature CSVs: same bits as the strict parser,
and every malformed file handed to the strict parser for its file/line/column error."""
from __future__ import annotations

import sys
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pytest

from modalink.face_voice import FeatureFileError, read_feature_csv
from modalink.face_voice.feature_arrow import read_feature_csv_arrow

pytest.importorskip("pyarrow")


def write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def bits(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).tobytes()


def midpoint_cells() -> list[str]:
    """Decimal strings a hair above a float32 rounding midpoint: rounded once to float32 they go
    up; rounded to float64 first (the strict parser) they land on the midpoint and go to even."""
    getcontext().prec = 60
    cells = []
    for k in (2, 6, 1000, 4194302):
        a = np.float32(1.0) + np.float32(2.0 ** -23) * k  # even significand
        mid = Decimal(float(a)) + Decimal(2) ** -24
        cells.append(format(mid + Decimal(10) ** -30, "f"))
        cells.append("-" + format((mid + Decimal(10) ** -30) * 1024, "f"))
    return cells


def random_cells(rng: np.random.Generator, n: int) -> list[str]:
    """Many digits, exponents, negative zero, integers, subnormals and huge/small magnitudes."""
    x = rng.standard_normal(n) * 10.0 ** rng.integers(-40, 39, n)
    styles = rng.integers(0, 7, n)
    out = []
    for v, s in zip(x.tolist(), styles.tolist()):
        out.append([repr(v), f"{v:.17g}", f"{v:.9e}", f"{v:.3E}", str(int(v) if abs(v) < 1e15 else 7),
                    "-0" if s % 2 else "-0.0", f"{v:.25f}"][s])
    return out


def test_arrow_reader_is_bit_identical_to_the_strict_parser(tmp_path):
    rng = np.random.default_rng(0)
    dim, n = 37, 60
    cells = random_cells(rng, n * dim)
    cells[: len(midpoint_cells())] = midpoint_cells()
    rows = [",".join(cells[i * dim:(i + 1) * dim]) + f",{i % 5}" for i in range(n)]
    p = write(tmp_path / "f.csv", "\n".join(rows) + "\n")
    assert read_feature_csv_arrow(p, dim, True) is not None  # the fast path is the one taken
    fast, fast_labels = read_feature_csv(p, dim, True)
    strict, strict_labels = read_feature_csv(p, dim, True, engine="strict")
    assert bits(fast) == bits(strict)
    assert fast_labels.dtype == strict_labels.dtype and np.array_equal(fast_labels, strict_labels)
    neg_zero = np.array([c in ("-0", "-0.0") for c in cells]).reshape(n, dim)
    assert neg_zero.any() and np.signbit(fast[neg_zero]).all() and (fast[neg_zero] == 0).all()


def test_midpoint_cells_round_through_float64_like_the_strict_parser(tmp_path):
    cells = midpoint_cells()
    p = write(tmp_path / "m.csv", ",".join(cells) + "\n")
    fast, _ = read_feature_csv(p, len(cells), False)
    expected = np.array([np.float32(float(c)) for c in cells], dtype=np.float32)
    assert bits(fast[0]) == bits(expected)
    once = np.array([np.float32(np.float64(float(c))) for c in cells])  # the same, written out
    assert bits(fast[0]) == bits(once)


@pytest.mark.parametrize("piece_bytes", [7, 64, 1 << 20])
def test_pieces_crlf_bom_trailing_blank_lines_and_string_labels(tmp_path, piece_bytes):
    rows = ["1.5,2,alice", "3,4e-1, bob ", "-0,1e-42,alice", "5,6,carol"]
    p = write(tmp_path / "w.csv", "\r\n".join(rows) + "\r\n\r\n\n", bom=True)
    fast = read_feature_csv_arrow(p, 2, True, piece_bytes=piece_bytes)
    assert fast is not None
    strict, labels = read_feature_csv(p, 2, True, engine="strict")
    assert bits(fast[0]) == bits(strict) and fast[1] == labels.tolist() == ["alice", "bob", "alice", "carol"]
    auto, auto_labels = read_feature_csv(p, 2, True)
    assert bits(auto) == bits(strict) and auto_labels.tolist() == labels.tolist()


def test_optional_label_column_and_no_trailing_newline(tmp_path):
    p = write(tmp_path / "t.csv", "1,2\n3,4")
    feats, labels = read_feature_csv(p, 2, None)
    assert labels is None and feats.tolist() == [[1, 2], [3, 4]]
    p = write(tmp_path / "tl.csv", "1,2,7\n3,4,8\n")
    feats, labels = read_feature_csv(p, 2, None)
    assert labels.tolist() == [7, 8] and labels.dtype == np.int64


def test_signs_and_leading_dots_anywhere_in_a_row_are_read_as_written(tmp_path):
    """Each cell is parsed behind its separator turned into a 0, the sign moved in front: valid
    spellings keep their exact value wherever they stand (first cell of the file included)."""
    cells = ["-.5", "+.25e-3", "+7", ".125", "-0", "+0.0", "-3e-2", "0.5", "-1.5E+3", ".5e1", "-007", "+.0"]
    rows = [",".join(cells[i:] + cells[:i]) + f",{i}" for i in range(len(cells))]
    p = write(tmp_path / "s.csv", "\n".join(rows) + "\n")
    for piece_bytes in (16, 1 << 20):  # every row its own piece, and one piece
        fast = read_feature_csv_arrow(p, len(cells), True, piece_bytes=piece_bytes)
        assert fast is not None  # all of them stay on the fast path
        strict, labels = read_feature_csv(p, len(cells), True, engine="strict")
        assert bits(fast[0]) == bits(strict) and [int(x) for x in fast[1]] == labels.tolist()
    assert np.signbit(strict[0][4]) and not np.signbit(strict[0][5])


BAD_FILES = {
    "non_numeric": ("1,1,1\n1,oops,1\n", 2, True),
    "empty_cell": ("1,1,1\n1,,1\n", 2, True),
    "quoted": ('1,1,1\n"1",1,1\n', 2, True),
    "wrong_width": ("1,1,1\n1,1\n", 2, True),
    "first_row_width": ("1,1\n1,1\n", 2, True),
    "blank_inside": ("1,1,1\n\n1,1,1\n", 2, True),
    "nan": ("1,1,1\n1,nan,1\n", 2, True),
    "inf": ("1,1,1\n1,-Infinity,1\n", 2, True),
    "overflow": ("1,1,1\n1,1e39,1\n", 2, True),
    "empty_label": ("1,1,1\n1,1,\n", 2, True),
    "float_label": ("1,1,1\n1,1,0.5\n", 2, True),
    "bad_utf8_label": ("1,1,a\n1,1,\udcff\n", 2, True),
    "blank_file": ("\n\n", 2, True),
    "mixed_test_widths": ("1,1\n1,1,1\n", 2, None),
    # cells a leading 0 would make valid: refused with the strict parser's error, not read as 0
    "lone_dot": ("1,1,1\n1,.,1\n", 2, True),
    "lone_minus": ("1,1,1\n1,-,1\n", 2, True),
    "lone_plus_first": ("+,1,1\n", 2, True),
    "minus_dot": ("1,1,1\n1,-.,1\n", 2, True),
    "plus_dot_exponent": ("1,1,1\n1,+.e5,1\n", 2, True),
    "dot_exponent": ("1,1,1\n.e5,1,1\n", 2, True),
    "bare_exponent": ("1,1,1\n1,e5,1\n", 2, True),
    "minus_exponent": ("1,1,1\n-E5,1,1\n", 2, True),
    "double_sign": ("1,1,1\n1,+-1,1\n", 2, True),
    "empty_first_cell": (",1,1\n", 2, True),
    "minus_then_space": ("1,1,1\n1,- 1,1\n", 2, True),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_files_get_the_strict_parsers_error(tmp_path, name):
    text, dim, has_label = BAD_FILES[name]
    p = tmp_path / f"{name}.csv"
    p.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(FeatureFileError) as strict:
        read_feature_csv(p, dim, has_label, engine="strict")
    with pytest.raises(FeatureFileError) as auto:
        read_feature_csv(p, dim, has_label)
    assert str(auto.value) == str(strict.value)
    assert (auto.value.line, auto.value.column) == (strict.value.line, strict.value.column)


def test_files_pyarrow_declines_are_read_by_the_strict_parser(tmp_path):
    p = write(tmp_path / "ws.csv", "1,\x0c2,0\n3,4\xa0,1\n")  # form feed / no-break space around numbers
    assert read_feature_csv_arrow(p, 2, True) is None
    feats, labels = read_feature_csv(p, 2, True)
    assert feats.tolist() == [[1, 2], [3, 4]] and labels.tolist() == [0, 1]


def test_without_pyarrow_the_strict_parser_reads(tmp_path, monkeypatch):
    p = write(tmp_path / "a.csv", "1,2,0\n3,4,1\n")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    assert read_feature_csv_arrow(p, 2, True) is None
    feats, labels = read_feature_csv(p, 2, True)
    assert feats.tolist() == [[1, 2], [3, 4]] and labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="engine"):
        read_feature_csv(p, 2, True, engine="pandas")


def test_parse_benchmark_runs_and_checks_bits(tmp_path):
    import subprocess

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_fame_parse.py"
    res = subprocess.run([sys.executable, str(script), "--rows", "30", "--dim", "50", "--repeats", "1",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-1000:] + res.stderr[-1000:]
    assert "| pyarrow (default) |" in res.stdout and "bit-identical float32 and labels: yes" in res.stdout
