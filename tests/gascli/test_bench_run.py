"""``gascli bench run`` (and its miner alias ``gascli d benchmark``): summary, JSON, exit codes."""

from __future__ import annotations

import json

import pytest
from bench_run_fakes import image_dataset, serial_pool_factory, shrink_image_package
from sandbox_packages import require_bwrap
from typer.testing import CliRunner

import gas.bench.runner as runner_mod
import gascli.commands.bench as bench_cli
from gas.bench.results import BenchResults, scores_from_records
from gas.submissions.templates import init_package
from gascli.app import app

cli = CliRunner()


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    return shrink_image_package(init_package("image", tmp_path_factory.mktemp("clipkg") / "p", seed=3))


@pytest.fixture()
def fake_world(tmp_path, monkeypatch):
    """Datasets and decoding stand-ins, so the CLI test does not depend on the dataset/decode modules."""
    ds = [image_dataset(tmp_path / "media", "c-real", "real", 5, seed=1),
          image_dataset(tmp_path / "media", "c-fake", "synthetic", 5, seed=2, corrupt=1)]
    calls = []

    def select(modality, names, cache_dir, mode):
        calls.append((modality.value, names, mode))
        return [d for d in ds if not names or d.name in names], {}

    monkeypatch.setattr(bench_cli, "_select_datasets", select)
    monkeypatch.setattr(bench_cli, "_tensor_cache", lambda cache_dir: None)
    monkeypatch.setattr(runner_mod, "default_decode_pool_factory", serial_pool_factory)
    return calls


def test_happy_path_prints_the_summary_and_writes_results(pkg, fake_world, tmp_path):
    require_bwrap()
    out = tmp_path / "res"
    r = cli.invoke(app, ["bench", "run", "--image-model", str(pkg), "--results-dir", str(out), "--device", "cpu",
                         "--batch-size", "4", "--cache-dir", str(tmp_path / "cache")], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert fake_world == [("image", None, "small")]
    text = r.stdout
    for fragment in ("c-real", "c-fake", "overall", "entrance exam", "bwrap", "samples/s", "score (sn34)",
                     str(out / "results.json")):
        assert fragment in text, fragment
    res = BenchResults.load(out / "results.json")
    assert res.complete and res.counts.decode_error == 1 and res.mode == "small"
    assert f"{res.overall.accuracy:.4f}" in text and f"{res.overall.sn34:.4f}" in text
    import pyarrow.parquet as pq

    assert scores_from_records(pq.read_table(out / "records.parquet")) == res.scores


def test_json_output_via_the_miner_alias(pkg, fake_world, tmp_path):
    require_bwrap()
    r = cli.invoke(app, ["d", "benchmark", "--image-model", str(pkg), "--full", "--json", "--datasets", "c-real,c-fake",
                         "--cache-dir", str(tmp_path / "cache"), "--seed", "4", "--batch-size", "3"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)  # stdout holds the JSON object and nothing else
    assert data["errors"] == [] and len(data["runs"]) == 1
    run = data["runs"][0]
    assert run["modality"] == "image" and run["results_dir"].startswith(str(tmp_path / "cache" / "results"))
    res = BenchResults.model_validate(run["results"])
    assert res.seed == 4 and res.batch_size == 3 and res.mode == "full" and res.exam is None
    assert res.counts.recorded == 11
    assert fake_world == [("image", ["c-real", "c-fake"], "full")]


def test_missing_dataset_exits_1_with_a_clear_message(pkg, tmp_path):
    r = cli.invoke(app, ["bench", "run", "--image-model", str(pkg), "--datasets", "no-such-set",
                         "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 1
    assert "unknown dataset 'no-such-set'" in r.stderr
    r = cli.invoke(app, ["bench", "run", "--image-model", str(pkg), "--cache-dir", str(tmp_path / "empty"), "--json"])
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["runs"] == [] and "no image datasets" in data["errors"][0]["error"]


def test_bad_package_exits_1(tmp_path, fake_world):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.py").write_text("import os\n")
    r = cli.invoke(app, ["bench", "run", "--image-model", str(bad), "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 1 and "invalid package" in r.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [([], "at least one of"), (["--image-model", "x", "--small", "--full"], "mutually exclusive"),
     (["--image-model", "x", "--datasets", " , "], "--datasets is empty"),
     (["--image-model", "x", "--aug-weight", "2"], "aug-weight"), (["--image-model", "x", "--device", "tpu"], "device")],
)
def test_usage_errors_exit_2(args, fragment):
    r = cli.invoke(app, ["bench", "run", *args])
    assert r.exit_code == 2
    assert fragment in r.output


def test_alias_is_the_same_command():
    r = cli.invoke(app, ["discriminator", "benchmark", "--help"], terminal_width=200)
    assert r.exit_code == 0 and "--image-model" in r.stdout and "--aug-weight" in r.stdout
    r = cli.invoke(app, ["bench", "--help"], terminal_width=200)
    assert "run" in r.stdout and "score" in r.stdout


def test_integration_default_datasets_real_decode_pool_and_cache(pkg, tmp_path):
    """No stand-ins: the synth datasets on disk, the real decode pool and tensor cache."""
    require_bwrap()
    synth = pytest.importorskip("gas.bench.synth")
    pytest.importorskip("gas.bench.decode_pool")
    cache = tmp_path / "cache"
    synth.synthesize(cache / "datasets", n=4, seed=0, modalities=["image"],
                     names=["synth-real-images", "synth-gan-images"])
    r = cli.invoke(app, ["bench", "run", "--image-model", str(pkg), "--cache-dir", str(cache), "--json",
                         "--workers", "2", "--batch-size", "4", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    res = BenchResults.model_validate(json.loads(r.stdout)["runs"][0]["results"])
    assert res.complete and res.counts.ok == 8
    assert set(res.datasets) == {"synth-real-images", "synth-gan-images"}
    assert any((cache / "tensors").rglob("*")), "decoded tensors were cached"
