"""``gascli bench score``: output formats, parameters and exit code 2 on malformed input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from gas.scoring import binary_metrics, sn34_score
from gas.scoring.score_file import load_score_table
from gascli.commands.bench import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "examples" / "scores.csv"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["score", *args])


def test_json_matches_binary_metrics_on_the_example():
    result = run(str(EXAMPLE), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)  # stdout holds the JSON object and nothing else
    table = load_score_table(EXAMPLE)
    expected = binary_metrics(table.labels, table.p_synthetic).to_dict()
    assert data == {"file": str(EXAMPLE), **expected}
    assert data["n"] == 200 and data["agg"] == "geomean"


def test_table_output_shows_every_metric():
    result = run(str(EXAMPLE))
    assert result.exit_code == 0, result.stderr
    m = load_score_table(EXAMPLE).metrics()
    out = result.stdout
    for label, value in (("accuracy", m.accuracy), ("MCC", m.mcc), ("Brier", m.brier), ("sn34", m.sn34)):
        line = next(ln for ln in out.splitlines() if label in ln)
        assert f"{value:.4f}" in line
    for label, value in (("TP", m.tp), ("TN", m.tn), ("FP", m.fp), ("FN", m.fn), ("samples", m.n)):
        line = next(ln for ln in out.splitlines() if label in ln)
        assert str(int(value)) in line


def test_table_output_with_weights(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("label,p_synthetic,weight\n1,0.9,1.5\n0,0.2,0.5\n0,0.7,1\n")
    result = run(str(path))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    cell = {
        name: next(ln for ln in lines if name in ln).split("│")[2].strip()
        for name in ("weight sum", "TP", "FP")
    }
    assert cell == {"weight sum": "3", "TP": "1.5", "FP": "1"}


@pytest.mark.parametrize(
    ("args", "alpha", "beta", "agg"),
    [
        (["--agg", "harmmean"], 1.2, 1.8, "harmmean"),
        (["--agg", "mean", "--alpha", "1", "--beta", "1"], 1.0, 1.0, "mean"),
        (["--alpha", "2.5", "--beta", "0.5"], 2.5, 0.5, "geomean"),
    ],
)
def test_parameters_change_the_score(args, alpha, beta, agg):
    result = run(str(EXAMPLE), "--json", *args)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["alpha"], data["beta"], data["agg"]) == (alpha, beta, agg)
    assert data["sn34"] == pytest.approx(sn34_score(data["mcc"], data["brier"], alpha, beta, agg))


def test_parquet_input(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"label": [1, 0, 1, 0], "p_synthetic": [0.9, 0.1, 0.4, 0.6]}), path)
    data = json.loads(run(str(path), "--json").stdout)
    assert (data["tp"], data["tn"], data["fp"], data["fn"]) == (1.0, 1.0, 1.0, 1.0)
    assert data["mcc"] == 0.0


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("a.csv", "p_synthetic\n0.5\n", ["missing column 'label'"]),
        ("b.csv", "label,p_synthetic\n1,0.5\n3,0.5\n", ["column 'label'", "row 2", "must be 0 or 1"]),
        ("c.csv", "label,p_synthetic\nyes,0.5\n", ["column 'label'", "row 1", "not a number"]),
        ("d.csv", "label,p_synthetic\n1,0.5\n0,1.01\n", ["column 'p_synthetic'", "row 2", "[0, 1]"]),
        ("e.csv", "label,p_synthetic\n1,nan\n", ["column 'p_synthetic'", "row 1"]),
        ("f.csv", "label,p_synthetic\n1,\n", ["column 'p_synthetic'", "row 1", "empty"]),
        ("g.csv", "label,p_synthetic,weight\n1,0.5,-2\n", ["column 'weight'", "row 1", ">= 0"]),
        ("h.csv", "label,p_synthetic,weight\n1,0.5,nan\n", ["column 'weight'", "row 1"]),
        ("i.csv", "label,p_synthetic\n", ["no data rows"]),
        ("j.csv", "", ["empty file"]),
        ("k.txt", "label,p_synthetic\n1,0.5\n", ["unknown file type '.txt'"]),
        ("l.parquet", "not parquet", ["cannot read file"]),
    ],
)
def test_malformed_files_exit_2_with_one_line(tmp_path, name, text, fragments):
    path = tmp_path / name
    path.write_text(text)
    for extra in ([], ["--json"]):
        result = run(str(path), *extra)
        assert result.exit_code == 2
        assert result.stdout == ""
        err = result.stderr
        assert err.startswith(f"error: {path}: ")
        assert err.endswith("\n") and err.count("\n") == 1
        for fragment in fragments:
            assert fragment in err


def test_missing_file_exits_2(tmp_path):
    result = run(str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "FileNotFoundError" in result.stderr


@pytest.mark.parametrize(("args", "fragment"), [(["--alpha", "-1"], "alpha"), (["--beta", "inf"], "beta")])
def test_bad_parameters_exit_2(args, fragment):
    result = run(str(EXAMPLE), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and fragment in result.stderr


def test_unknown_aggregation_is_a_usage_error():
    result = run(str(EXAMPLE), "--agg", "max")
    assert result.exit_code == 2
    assert "max" in result.stderr


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "score" in result.stdout


def test_module_import_stays_light():
    code = (
        "import sys, gascli.commands.bench; "
        "print(','.join(m for m in ('numpy', 'pyarrow', 'sklearn', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
