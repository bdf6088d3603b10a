"""Local datasets (manifest, write, verify) and the dataset registry (load, validate, resolve)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gas.bench.dataset import (
    COLUMNS,
    MANIFEST_NAME,
    DatasetEntry,
    DatasetError,
    LocalDataset,
    RegistryError,
    datasets_dir,
    find_local,
    load_registry,
    make_sample_id,
    resolve,
    write_dataset,
)
from gas.bench.types import Sample
from gas.types import MediaLabel, Modality

REPO = Path(__file__).resolve().parents[2]


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


ITEMS = [
    ("samples/a.jpg", b"\xff\xd8\xff first", "real", "folder:/src/a.jpg", None, None),
    ("samples/sub/b.png", b"\x89PNG\r\n\x1a\n second", "synthetic", "gen", "5Hotkey", "sdxl"),
    ("samples/c.png", b"\x89PNG\r\n\x1a\n third", "semisynthetic", "", None, "inpaint"),
]


def make(tmp_path: Path, name: str = "demo", items=ITEMS, modality: str = "image") -> LocalDataset:
    return write_dataset(tmp_path / name, name, items, modality)


# --------------------------------------------------------------------------------------------
# manifest round trip
# --------------------------------------------------------------------------------------------
def test_round_trip_keeps_bytes_labels_and_provenance(tmp_path):
    ds = make(tmp_path)
    assert (ds.name, ds.modality, len(ds)) == ("demo", Modality.IMAGE, 3)
    samples = ds.samples()
    assert all(isinstance(s, Sample) and s.path.is_absolute() for s in samples)
    for s, (rel, data, label, source, hotkey, model) in zip(samples, ITEMS, strict=True):
        assert s.path == (tmp_path / "demo" / rel).resolve()
        assert s.path.read_bytes() == data  # written exactly as given
        assert s.sha256 == sha(data)
        assert s.sample_id == make_sample_id("demo", sha(data)) == f"demo:{sha(data)[:16]}"
        assert (s.label.value, s.source, s.generator_hotkey, s.generator_model) == (label, source, hotkey, model)
        assert s.dataset == "demo" and s.modality is Modality.IMAGE
        assert ds.verify(s)
    assert [s.y for s in samples] == [0, 1, 1]
    assert ds.labels == {MediaLabel.REAL, MediaLabel.SYNTHETIC, MediaLabel.SEMISYNTHETIC}
    assert ds.size_bytes() == sum(len(i[1]) for i in ITEMS)
    # the manifest is plain parquet with the documented columns and dataset metadata
    table = pq.read_table(tmp_path / "demo" / MANIFEST_NAME)
    assert tuple(table.column_names) == COLUMNS
    assert b"gas.dataset" in table.schema.metadata


def test_reopening_gives_the_same_samples(tmp_path):
    first = make(tmp_path).samples()
    again = LocalDataset(tmp_path / "demo").samples()
    assert first == again
    assert LocalDataset(tmp_path / "demo", name="renamed").samples()[0].dataset == "renamed"


def test_verify_and_missing_catch_changed_and_deleted_files(tmp_path):
    ds = make(tmp_path)
    a, b, c = ds.samples()
    a.path.write_bytes(b"changed")
    c.path.unlink()
    assert not ds.verify(a) and ds.verify(b) and not ds.verify(c)
    assert ds.missing() == [c]


def test_duplicate_bytes_become_one_sample(tmp_path):
    items = [*ITEMS, ("samples/copy.jpg", ITEMS[0][1], "real", "", None, None)]
    ds = make(tmp_path, items=items)
    assert len(ds) == 3 and not (tmp_path / "demo" / "samples/copy.jpg").exists()


@pytest.mark.parametrize("bad", ["../escape.jpg", "/abs/a.jpg", "a\\b.jpg", "a//b.jpg", "./a.jpg", MANIFEST_NAME, ""])
def test_unsafe_paths_are_rejected(tmp_path, bad):
    with pytest.raises(DatasetError, match="path"):
        write_dataset(tmp_path / "x", "x", [(bad, b"data", "real", "", None, None)], "image")
    assert not (tmp_path / "x").exists()


def test_write_is_all_or_nothing(tmp_path):
    def broken():
        yield ITEMS[0]
        raise RuntimeError("generator died")

    with pytest.raises(RuntimeError):
        write_dataset(tmp_path / "x", "x", broken(), "image")
    assert list(tmp_path.iterdir()) == []  # no dataset, no staging directory left behind


def test_existing_dataset_needs_overwrite(tmp_path):
    make(tmp_path)
    with pytest.raises(DatasetError, match="already exists"):
        make(tmp_path, items=ITEMS[:1])
    ds = write_dataset(tmp_path / "demo", "demo", ITEMS[:1], "image", overwrite=True)
    assert len(ds) == 1 and len(LocalDataset(tmp_path / "demo")) == 1
    assert not (tmp_path / "demo" / "samples/sub/b.png").exists()  # the old files went with the old dataset
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="no samples"):
        write_dataset(tmp_path / "e", "e", [], "audio")
    with pytest.raises(DatasetError, match="invalid dataset name"):
        write_dataset(tmp_path / "e", "../e", ITEMS, "image")
    with pytest.raises(DatasetError, match="label"):
        write_dataset(tmp_path / "e", "e", [("a.jpg", b"x", "fake", "", None, None)], "image")
    with pytest.raises(DatasetError, match="given twice"):
        write_dataset(tmp_path / "e", "e", [("a.jpg", b"x", "real"), ("a.jpg", b"y", "real")], "image")
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "e", "e", ITEMS, "text")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(
        st.tuples(st.binary(min_size=1, max_size=64), st.sampled_from(["real", "synthetic", "semisynthetic"])),
        min_size=1,
        max_size=8,
    ),
    modality=st.sampled_from(["image", "video", "audio"]),
)
def test_round_trip_property(tmp_path_factory, files, modality):
    root = tmp_path_factory.mktemp("prop")
    items = [(f"s/{i}.bin", data, label, f"src{i}", None, None) for i, (data, label) in enumerate(files)]
    ds = write_dataset(root / "p", "p", items, modality)
    unique = {}
    for rel, data, label, *_ in items:
        unique.setdefault(sha(data), (rel, data, label))
    assert [(s.path.read_bytes(), s.label.value) for s in ds.samples()] == [(d, lb) for _, d, lb in unique.values()]
    assert all(s.modality.value == modality for s in ds.samples())


# --------------------------------------------------------------------------------------------
# bad manifests: the error names the file, the row and the column
# --------------------------------------------------------------------------------------------
def write_rows(root: Path, rows: list[dict], columns=COLUMNS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = {c: [r.get(c) for r in rows] for c in columns}
    pq.write_table(pa.table(data, schema=pa.schema([(c, pa.string()) for c in columns])), root / MANIFEST_NAME)
    return root


def row(i: int, **kw) -> dict:
    digest = sha(str(i).encode())
    base = {"sample_id": f"d:{digest[:16]}", "path": f"s/{i}.jpg", "sha256": digest, "label": "real",
            "modality": "image", "source": "", "generator_hotkey": None, "generator_model": None}
    return base | kw


@pytest.mark.parametrize(
    ("bad", "column"),
    [
        ({"sha256": "not-a-hash"}, "sha256"),
        ({"label": "fake"}, "label"),
        ({"modality": "text"}, "modality"),
        ({"path": "../../etc/passwd"}, "path"),
        ({"sample_id": ""}, "sample_id"),
    ],
)
def test_bad_row_names_file_row_and_column(tmp_path, bad, column):
    root = write_rows(tmp_path / "d", [row(0), row(1), row(2, **bad)])
    with pytest.raises(DatasetError) as err:
        LocalDataset(root)
    msg = str(err.value)
    assert str(root / MANIFEST_NAME) in msg and "row 2" in msg and f"column {column!r}" in msg


def test_missing_column_is_named(tmp_path):
    root = write_rows(tmp_path / "d", [row(0)], columns=[c for c in COLUMNS if c != "sha256"])
    with pytest.raises(DatasetError, match="missing column.*'sha256'"):
        LocalDataset(root)


def test_duplicate_sample_id_and_mixed_modality(tmp_path):
    root = write_rows(tmp_path / "d", [row(0), row(1, sample_id=row(0)["sample_id"])])
    with pytest.raises(DatasetError, match=r"row 1, column 'sample_id': duplicate"):
        LocalDataset(root)
    root = write_rows(tmp_path / "e", [row(0), row(1), row(2, modality="audio")])
    with pytest.raises(DatasetError, match=r"row 2, column 'modality'.*one modality"):
        LocalDataset(root)


def test_unreadable_manifest(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / MANIFEST_NAME).write_bytes(b"this is not parquet")
    with pytest.raises(DatasetError, match="not a readable parquet file"):
        LocalDataset(tmp_path / "d")


def test_missing_dataset_gives_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        LocalDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no manifest\.parquet.*gascli data"):
        LocalDataset(tmp_path / "empty")


def test_find_local_lists_only_datasets(tmp_path):
    make(tmp_path, "b")
    make(tmp_path, "a")
    (tmp_path / "not-a-dataset").mkdir()
    (tmp_path / ".a.partial-1").mkdir()
    assert [p.name for p in find_local(tmp_path)] == ["a", "b"]
    assert list(find_local(tmp_path / "absent")) == []


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


ENTRY = """
  - name: {name}
    modality: {modality}
    label: {label}
    source: {source}
"""


def test_bundled_registry_is_valid_and_covers_every_modality():
    reg = load_registry()
    public = [e for e in reg.values() if e.is_hf]
    synth = [e for e in reg.values() if e.name.startswith("synth-")]
    assert 8 <= len(public) <= 12
    assert {e.modality for e in public} == set(Modality)
    assert {e.label for e in public} == set(MediaLabel)
    for m in Modality:  # every modality has both classes among the public ones
        assert {e.label.binary for e in public if e.modality is m} == {0, 1}
    assert len(synth) == 7 and all(not e.is_hf for e in synth)
    from gas.bench.synth import SYNTH_DATASETS

    assert {(s.name, s.modality, s.label) for s in SYNTH_DATASETS} == {(e.name, e.modality, e.label) for e in synth}
    assert all(e.caps.small >= 1 for e in reg.values())
    assert reg["afhq"].origin.endswith("public.yaml:entry 0")


def test_registry_errors_name_file_and_entry(tmp_path):
    f = write_yaml(
        tmp_path / "bad.yaml",
        "datasets:\n"
        + ENTRY.format(name="ok", modality="image", label="real", source="hf://org/ok")
        + ENTRY.format(name="broken", modality="smell", label="real", source="hf://org/b")
        + ENTRY.format(name="typo", modality="audio", label="real", source="hf://org/t")
        + "    capz: {small: 5}\n"
        + ENTRY.format(name="confused", modality="video", label="real", source="hf://org/c")
        + "    media_type: synthetic\n"
        + ENTRY.format(name="wrongext", modality="image", label="real", source="hf://org/w")
        + "    media_type: mp4\n"
        + ENTRY.format(name="badcap", modality="image", label="real", source="hf://org/x")
        + "    caps: {small: 0}\n"
        + ENTRY.format(name="badsrc", modality="image", label="real", source="s3://bucket/x"),
    )
    with pytest.raises(RegistryError) as err:
        load_registry([f])
    problems = err.value.problems
    assert len(problems) == 6, problems
    assert all(p.startswith(f"{f}: entry ") for p in problems)
    text = "\n".join(problems)
    assert "entry 1 ('broken'): modality" in text
    assert "entry 2 ('typo'): capz: Extra inputs are not permitted" in text
    assert "entry 3 ('confused'): media_type: media_type is the file type" in text
    assert "entry 4 ('wrongext')" in text and "not a image file type" in text
    assert "entry 5 ('badcap'): caps.small" in text
    assert "entry 6 ('badsrc'): source: unsupported source scheme" in text


def test_duplicate_names_across_files(tmp_path):
    a = write_yaml(tmp_path / "a.yaml", "datasets:" + ENTRY.format(name="x", modality="image", label="real", source="hf://o/a"))
    b = write_yaml(tmp_path / "b.yaml", "datasets:" + ENTRY.format(name="x", modality="audio", label="real", source="hf://o/b"))
    with pytest.raises(RegistryError, match=r"b\.yaml: entry 0 \('x'\): duplicate dataset name 'x' \(first defined at .*a\.yaml:entry 0\)"):
        load_registry([tmp_path])  # a directory contributes its *.yaml files, sorted
    assert load_registry([a])["x"].modality is Modality.IMAGE
    assert load_registry([b])["x"].modality is Modality.AUDIO


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("datasets: [unclosed", "not valid YAML"),
        ("- just a list\n", "expected a mapping with a 'datasets:' list"),
        ("datasets:\n  - 42\n", "entry 0: expected a mapping"),
    ],
)
def test_malformed_registry_files(tmp_path, text, match):
    f = write_yaml(tmp_path / "r.yaml", text)
    with pytest.raises(RegistryError, match=match) as err:
        load_registry([f])
    assert str(f) in str(err.value)


def test_missing_registry_file(tmp_path):
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry([tmp_path / "absent.yaml"])


# --------------------------------------------------------------------------------------------
# resolve
# --------------------------------------------------------------------------------------------
def entry(**kw) -> DatasetEntry:
    return DatasetEntry.model_validate({"name": "demo", "modality": "image", "label": "real", "source": "hf://org/demo"} | kw)


def test_resolve_hf_dataset_not_imported_says_what_to_run(tmp_path):
    with pytest.raises(DatasetError, match=r"'demo' \(hf://org/demo\) is not imported yet.*gascli data import demo"):
        resolve(entry(), tmp_path)


def test_resolve_missing_local_dataset(tmp_path):
    with pytest.raises(DatasetError, match="gascli data synth"):
        resolve(entry(name="synth-real-images", source="local:synth-real-images"), tmp_path)
    with pytest.raises(DatasetError, match="gascli data import FOLDER --name mine"):
        resolve(entry(name="mine", source="/nowhere/mine"), tmp_path)


def test_resolve_finds_imported_and_local_datasets(tmp_path):
    root = datasets_dir(tmp_path)
    write_dataset(root / "demo", "demo", ITEMS[:1], "image")
    ds = resolve(entry(), tmp_path)
    assert ds.name == "demo" and len(ds) == 1
    elsewhere = write_dataset(tmp_path / "elsewhere", "other", ITEMS[:1], "image")
    assert resolve(entry(name="other", source=str(elsewhere.root)), tmp_path).root == elsewhere.root
    assert resolve(entry(name="rel", source="local:demo"), tmp_path).name == "rel"
    os.environ["GAS_TEST_DS"] = str(tmp_path)
    try:
        assert resolve(entry(name="env", source="$GAS_TEST_DS/elsewhere"), tmp_path).name == "env"
    finally:
        del os.environ["GAS_TEST_DS"]


def test_resolve_rejects_a_dataset_that_disagrees_with_the_registry(tmp_path):
    write_dataset(datasets_dir(tmp_path) / "demo", "demo", ITEMS[:1], "image")
    with pytest.raises(DatasetError, match="holds image but the registry.*says audio"):
        resolve(entry(modality="audio"), tmp_path)
    with pytest.raises(DatasetError, match=r"label\(s\) \['real'\] but the registry.*'synthetic'.*re-import"):
        resolve(entry(label="synthetic"), tmp_path)
