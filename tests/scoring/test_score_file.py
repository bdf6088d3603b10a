"""Reading score files: the shipped example, weights, parquet, and precise error messages."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gas.scoring import ScoringInputError, binary_metrics
from gas.scoring.score_file import ScoreFileError, ScoreTable, load_score_table

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "examples" / "scores.csv"


def write(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_loads_and_is_plausible():
    table = load_score_table(EXAMPLE)
    assert isinstance(table, ScoreTable)
    assert len(table) == 200
    assert table.labels.dtype == np.int8 and table.p_synthetic.dtype == np.float64
    assert table.weights is None
    assert set(np.unique(table.labels).tolist()) == {0, 1}
    # independent read with the csv module
    with EXAMPLE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert table.labels.tolist() == [int(r["label"]) for r in rows]
    assert table.p_synthetic.tolist() == [float(r["p_synthetic"]) for r in rows]
    m = table.metrics()
    assert 0.5 <= m.sn34 <= 0.8
    assert m == binary_metrics(table.labels, table.p_synthetic)


def test_generator_script_writes_a_loadable_file(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_example_scores", REPO / "benchmarks" / "make_example_scores.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "scores.csv"
    assert module.main([str(out)]) == 0
    table = load_score_table(out)
    assert len(table) == 200 and int(table.labels.sum()) == 100


def test_weights_extra_columns_whitespace_and_blank_lines(tmp_path):
    path = write(
        tmp_path,
        "\ufeffid, label ,p_synthetic,weight,note\na,1,0.9,2,x\n\nb, 0 , 0.2 ,0.5,y\nc,1.0,1,0,\n",
    )
    table = load_score_table(path)
    assert table.labels.tolist() == [1, 0, 1]
    assert table.p_synthetic.tolist() == [0.9, 0.2, 1.0]
    assert table.weights.tolist() == [2.0, 0.5, 0.0]
    m = table.metrics(agg="mean")
    assert m.weight_sum == 2.5 and m.agg == "mean"


def test_parquet_round_trip(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(
        pa.table({"label": pa.array([1, 0, 1], pa.int64()), "p_synthetic": [0.8, 0.1, 0.4], "w": [1, 2, 3]}),
        path,
    )
    table = load_score_table(path)
    assert table.labels.tolist() == [1, 0, 1]
    assert table.p_synthetic.tolist() == [0.8, 0.1, 0.4]
    assert table.weights is None  # 'w' is not the weight column


def test_parquet_bool_labels_and_string_columns(tmp_path):
    path = tmp_path / "s.pq"
    pq.write_table(
        pa.table({"label": [True, False], "p_synthetic": ["0.7", "0.3"], "weight": [1.0, 3.0]}), path
    )
    table = load_score_table(path)
    assert table.labels.tolist() == [1, 0]
    assert table.p_synthetic.tolist() == [0.7, 0.3]
    assert table.weights.tolist() == [1.0, 3.0]


# --------------------------------------------------------------------------------------------------
# errors: each names the file, the column and the 1-based data row (CSV also gives the file line)

HEADER = "label,p_synthetic,weight\n"


@pytest.mark.parametrize(
    ("body", "column", "row", "fragment"),
    [
        ("1,0.9,1\n2,0.5,1\n", "label", 2, "must be 0 or 1, got '2'"),
        ("1,0.9,1\n0,0.5,1\n-1,0.5,1\n", "label", 3, "must be 0 or 1"),
        ("real,0.9,1\n", "label", 1, "not a number: 'real'"),
        ("1,0.9,1\n,0.5,1\n", "label", 2, "an empty cell"),
        ("1,0.9,1\n0,1.5,1\n", "p_synthetic", 2, "[0, 1], got '1.5'"),
        ("1,-0.01,1\n", "p_synthetic", 1, "[0, 1]"),
        ("1,0.9,1\n0,nan,1\n", "p_synthetic", 2, "got 'nan'"),
        ("1,0.9,1\n0,inf,1\n", "p_synthetic", 2, "got 'inf'"),
        ("1,,1\n", "p_synthetic", 1, "an empty cell"),
        ("1,0.9,1\n0\n", "p_synthetic", 2, "an empty cell"),  # short row
        ("1,0.9,1\n0,0.5,-1\n", "weight", 2, "finite number >= 0, got '-1'"),
        ("1,0.9,nan\n", "weight", 1, "got 'nan'"),
        ("1,0.9,1\n1,0.9,1\n0,0.5,\n", "weight", 3, "an empty cell"),
    ],
)
def test_bad_values_name_column_and_row(tmp_path, body, column, row, fragment):
    path = write(tmp_path, HEADER + body)
    with pytest.raises(ScoreFileError) as info:
        load_score_table(path)
    err = info.value
    msg = str(err)
    assert msg.startswith(f"{path}: ")
    assert f"column {column!r}" in msg
    assert f"row {row} (line {row + 1})" in msg
    assert fragment in msg
    assert (err.column, err.row, err.path) == (column, row, str(path))


def test_line_number_counts_blank_lines(tmp_path):
    path = write(tmp_path, HEADER + "1,0.9,1\n\n\n0,7,1\n")
    with pytest.raises(ScoreFileError, match=r"row 2 \(line 5\)"):
        load_score_table(path)


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("p_synthetic\n0.5\n", "missing column 'label' (columns: 'p_synthetic')", "label"),
        ("label,prob\n1,0.5\n", "missing column 'p_synthetic'", "p_synthetic"),
        ("label,p_synthetic\n", "no data rows", None),
        ("label,p_synthetic\n\n\n", "no data rows", None),
        ("", "empty file", None),
        ("label,label,p_synthetic\n1,1,0.5\n", "duplicate column 'label'", "label"),
    ],
)
def test_structural_errors(tmp_path, text, fragment, column):
    path = write(tmp_path, text)
    with pytest.raises(ScoreFileError) as info:
        load_score_table(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.column == column


def test_unknown_extension(tmp_path):
    path = write(tmp_path, HEADER + "1,0.5,1\n", name="s.json")
    with pytest.raises(ScoreFileError, match=r"unknown file type '\.json'"):
        load_score_table(path)
    with pytest.raises(ScoreFileError, match=r"unknown file type '\(none\)'"):
        load_score_table(tmp_path / "noext")


def test_unreadable_files(tmp_path):
    with pytest.raises(ScoreFileError, match="cannot read file.*FileNotFoundError"):
        load_score_table(tmp_path / "missing.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ScoreFileError, match="cannot read file"):
        load_score_table(tmp_path / "dir.csv")
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"label,p_synthetic\n1,0.5\xff\n")
    with pytest.raises(ScoreFileError, match="UnicodeDecodeError"):
        load_score_table(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not a parquet file at all")
    with pytest.raises(ScoreFileError, match="cannot read file"):
        load_score_table(junk)
    with pytest.raises(ScoreFileError, match="cannot read file"):
        load_score_table(tmp_path / "missing.parquet")


def test_parquet_errors_name_column_and_row(tmp_path):
    path = tmp_path / "nulls.parquet"
    pq.write_table(
        pa.table({"label": pa.array([1, None, 0], pa.int64()), "p_synthetic": [0.5, 0.5, 0.5]}), path
    )
    with pytest.raises(ScoreFileError, match=r"column 'label', row 2: must be 0 or 1, got NaN"):
        load_score_table(path)

    path = tmp_path / "range.parquet"
    pq.write_table(pa.table({"label": [1, 0, 0], "p_synthetic": [0.5, 0.5, 1.25]}), path)
    with pytest.raises(ScoreFileError, match=r"column 'p_synthetic', row 3: .*got 1\.25"):
        load_score_table(path)

    path = tmp_path / "strings.parquet"
    pq.write_table(pa.table({"label": ["1", "x"], "p_synthetic": [0.5, 0.5]}), path)
    with pytest.raises(ScoreFileError, match=r"column 'label', row 2: not a number: 'x'"):
        load_score_table(path)

    path = tmp_path / "types.parquet"
    pq.write_table(pa.table({"label": [1], "p_synthetic": [[0.5]]}), path)
    with pytest.raises(ScoreFileError, match="column 'p_synthetic' has unsupported type"):
        load_score_table(path)

    path = tmp_path / "missing.parquet"
    pq.write_table(pa.table({"label": [1]}), path)
    with pytest.raises(ScoreFileError, match="missing column 'p_synthetic'"):
        load_score_table(path)

    path = tmp_path / "empty.parquet"
    pq.write_table(
        pa.table({"label": pa.array([], pa.int8()), "p_synthetic": pa.array([], pa.float64())}), path
    )
    with pytest.raises(ScoreFileError, match="no data rows"):
        load_score_table(path)


def test_score_file_error_is_a_scoring_input_error():
    assert issubclass(ScoreFileError, ScoringInputError)
    assert issubclass(ScoreFileError, ValueError)
