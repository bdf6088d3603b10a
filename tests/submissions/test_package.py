"""Package format: layout, zip safety, limits, safetensors headers. Every bad package is built here."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from detector_packages import (
    package_files,
    patch_central,
    raw_safetensors,
    tiny_safetensors,
    write_dir,
    write_zip,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from gas.submissions.package import (
    ModelPackage,
    PackageError,
    PackageLimits,
    check_safetensors,
    load_package,
    pack_directory,
    pack_directory_to,
)
from gas.types import Modality


def _err(path: Path, **kw) -> PackageError:
    with pytest.raises(PackageError) as exc:
        load_package(path, **kw)
    return exc.value


def _zip(tmp_path: Path, extra: dict[str, bytes] | None = None, drop: tuple[str, ...] = (), **kw) -> Path:
    files = {k: v for k, v in package_files().items() if k not in drop}
    files.update(extra or {})
    return write_zip(tmp_path / "pkg.zip", files, **kw)


# -- valid packages ----------------------------------------------------------------------------------


def test_valid_zip_is_extracted_read_only_and_hashed(tmp_path: Path) -> None:
    z = _zip(tmp_path, {"README.md": b"# hi\n", "LICENSE": b"MIT\n", "config.json": b"{}"})
    with load_package(z) as pkg:
        assert isinstance(pkg, ModelPackage)
        assert pkg.sha256 == hashlib.sha256(z.read_bytes()).hexdigest()
        assert pkg.archive_bytes() == z.read_bytes()
        assert pkg.modality is Modality.IMAGE
        assert pkg.weights_path == pkg.root / "model.safetensors" and pkg.weights_path.is_file()
        assert pkg.model_path.read_text().startswith('"""GAS detector template')
        names = [f.name for f in pkg.files]
        assert names == sorted(names) and "README.md" in names and "config.json" in names
        for f in pkg.files:
            p = pkg.root / f.name
            assert p.stat().st_size == f.size
            assert hashlib.sha256(p.read_bytes()).hexdigest() == f.sha256
            assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0  # read-only
        assert pkg.owns_root and pkg.archive_path == z.resolve()
        root = pkg.root
    assert not root.exists()  # the context manager cleaned up the temporary directory


def test_single_top_level_folder_and_os_junk(tmp_path: Path) -> None:
    items = [(f"my_model/{k}", v) for k, v in package_files().items()]
    items += [("my_model/", b""), ("__MACOSX/my_model/._model.py", b"junk"), ("my_model/.DS_Store", b"x")]
    z = write_zip(tmp_path / "pkg.zip", items)
    with load_package(z, dest=tmp_path / "out") as pkg:
        assert pkg.root == (tmp_path / "out").resolve() and not pkg.owns_root
        assert sorted(os.listdir(pkg.root)) == ["model.py", "model.safetensors", "model_config.yaml"]


def test_directory_is_validated_in_place_and_hashed_as_its_deterministic_zip(tmp_path: Path) -> None:
    d = write_dir(tmp_path / "pkg", package_files())
    (d / "__pycache__").mkdir()
    (d / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"junk")
    (d / ".git").mkdir()
    (d / ".gitattributes").write_text("*.safetensors lfs\n")
    pkg = load_package(d)
    assert pkg.root == d.resolve() and not pkg.owns_root and pkg.archive_path is None
    packed = pack_directory(d)
    assert pkg.sha256 == hashlib.sha256(packed).hexdigest()
    assert pkg.archive_bytes() == packed
    with zipfile.ZipFile(io.BytesIO(packed)) as zf:
        assert zf.namelist() == ["model.py", "model.safetensors", "model_config.yaml"]
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    # same content, new mtimes -> same bytes; and the file form matches the bytes form
    for f in d.iterdir():
        if f.is_file():
            os.utime(f, (1_700_000_000, 1_700_000_000))
    assert pack_directory(d) == packed
    assert pack_directory_to(d, tmp_path / "p.zip") == pkg.sha256
    assert (tmp_path / "p.zip").read_bytes() == packed
    # the packed zip loads and hashes the same
    with load_package(tmp_path / "p.zip") as again:
        assert again.sha256 == pkg.sha256
    # a change after validation is detected
    (d / "model.py").write_text((d / "model.py").read_text() + "\n# edited\n")
    with pytest.raises(PackageError) as exc:
        pkg.archive_bytes()
    assert exc.value.check == "changed"


def test_pack_directory_refuses_forbidden_files(tmp_path: Path) -> None:
    d = write_dir(tmp_path / "pkg", {**package_files(), "model.pt": b"\x80\x04"})
    with pytest.raises(PackageError) as exc:
        pack_directory(d)
    assert exc.value.check == "forbidden-file"


def test_modality_argument_fills_a_missing_key(tmp_path: Path) -> None:
    z = _zip(tmp_path, {"model_config.yaml": b"name: ref\n"})
    with load_package(z, modality="audio") as pkg:
        assert pkg.modality is Modality.AUDIO
    assert _err(z).check == "config"
    z2 = _zip(tmp_path)
    e = _err(z2, modality="video")
    assert e.check == "config" and "submitted as 'video'" in str(e)


# -- zip safety --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil.py", "a/../../evil.txt", "/abs/evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_zip_slip(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out" / "inner"
    e = _err(_zip(tmp_path, {name: b"x"}), dest=out)
    assert e.check == "zip-slip" and "evil" in str(e)
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert not out.exists()


def test_symlink_entry(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("model.safetensors")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    files = [(k, v) for k, v in package_files().items() if k != "model.safetensors"] + [(info, b"/etc/passwd")]
    e = _err(write_zip(tmp_path / "pkg.zip", files))
    assert e.check == "symlink" and "model.safetensors" in str(e)


def test_special_file_entry(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("README.md")
    info.external_attr = (stat.S_IFIFO | 0o644) << 16
    files = [*package_files().items(), (info, b"")]
    assert _err(write_zip(tmp_path / "pkg.zip", files)).check == "special-file"


def test_encrypted_entry(tmp_path: Path) -> None:
    z = _zip(tmp_path)
    z.write_bytes(patch_central(z.read_bytes(), 0, flag_bits=0x1))
    assert _err(z).check == "zip-encrypted"


def test_unsupported_compression(tmp_path: Path) -> None:
    assert _err(_zip(tmp_path, compression=zipfile.ZIP_BZIP2)).check == "zip-compression"


def test_zip_bomb_ratio(tmp_path: Path) -> None:
    z = _zip(tmp_path, {"README.md": b"\0" * (2 << 20)})
    e = _err(z, limits=PackageLimits(max_doc_bytes=4 << 20))
    assert e.check == "zip-bomb" and "ratio" in str(e)


def test_zip_bomb_declared_size_lies_and_extraction_stops(tmp_path: Path) -> None:
    z = _zip(tmp_path, {"README.md": b"#" * 200_000})  # under the ratio threshold size
    data = z.read_bytes()
    with zipfile.ZipFile(z) as zf:
        index = zf.namelist().index("README.md")
    z.write_bytes(patch_central(data, index, file_size=100))
    out = tmp_path / "out"
    e = _err(z, dest=out)
    assert e.check in ("zip-bomb", "archive") and "README.md" in str(e)
    assert not out.exists()  # partial extraction removed


def test_zip_bomb_overlapping_entries(tmp_path: Path) -> None:
    z = _zip(tmp_path, {"README.md": b"hello"})
    data = z.read_bytes()
    z.write_bytes(patch_central(data, 1, header_offset=0))
    assert _err(z).check == "zip-bomb"


def test_too_many_files(tmp_path: Path) -> None:
    e = _err(_zip(tmp_path, {f"n{i}.txt": b"x" for i in range(70)}))
    assert e.check == "file-count"
    e = _err(_zip(tmp_path, {f"n{i}.txt": b"x" for i in range(300)}))  # refused from the end record
    assert e.check == "file-count"


def test_oversized_files(tmp_path: Path) -> None:
    e = _err(_zip(tmp_path), limits=PackageLimits(max_model_py_bytes=100))
    assert e.check == "file-size" and "model.py" in str(e)
    e = _err(_zip(tmp_path, {"model_config.yaml": b"modality: image\n" + b"#" * (65 * 1024)}))
    assert e.check == "file-size" and "model_config.yaml" in str(e)
    e = _err(_zip(tmp_path), limits=PackageLimits(max_safetensors_bytes=10))
    assert e.check == "file-size" and "model.safetensors" in str(e)
    assert _err(_zip(tmp_path), limits=PackageLimits(max_total_bytes=1000)).check == "total-size"
    assert _err(_zip(tmp_path), limits=PackageLimits(max_archive_bytes=100)).check == "archive"


def test_duplicate_names(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = write_zip(tmp_path / "pkg.zip", [*package_files().items(), ("model.py", b"x = 1\n")])
    e = _err(z)
    assert e.check == "duplicate-name" and "model.py" in str(e)


def test_nested_paths(tmp_path: Path) -> None:
    e = _err(_zip(tmp_path, {"sub/helper.txt": b"x"}))
    assert e.check == "nested-path" and "sub/helper.txt" in str(e)


def test_not_a_zip(tmp_path: Path) -> None:
    p = tmp_path / "pkg.zip"
    p.write_bytes(b"definitely not a zip file")
    assert _err(p).check == "archive"
    assert _err(tmp_path / "missing.zip").check == "archive"


def test_dest_must_be_empty_and_is_cleaned_on_failure(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert _err(_zip(tmp_path), dest=busy).check == "archive"
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = _zip(tmp_path, {"model_config.yaml": b"modality: image\nmodel: {num_classes: 0}\n"})
    assert _err(bad, dest=empty).check == "config"
    assert empty.exists() and list(empty.iterdir()) == []  # extracted files removed, caller's dir kept


# -- files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.pt", "weights.pth", "model.pkl", "model.onnx", "pytorch_model.bin",
                                  "model.ckpt", "x.pickle"])
def test_forbidden_weight_formats(tmp_path: Path, name: str) -> None:
    e = _err(_zip(tmp_path, {name: b"\x80\x04K\x01."}))
    assert e.check == "forbidden-file" and name in str(e)
    assert "pickle/onnx weights are not accepted; convert to safetensors" in str(e)


@pytest.mark.parametrize("name,check", [("helper.py", "forbidden-file"), ("lib.so", "forbidden-file"),
                                        ("notes.docx", "unexpected-file"), ("model_config.yml", "unexpected-file")])
def test_other_files_are_refused(tmp_path: Path, name: str, check: str) -> None:
    e = _err(_zip(tmp_path, {name: b"x"}))
    assert e.check == check and name in str(e)


@pytest.mark.parametrize("missing", ["model.py", "model_config.yaml", "model.safetensors"])
def test_missing_required_files(tmp_path: Path, missing: str) -> None:
    e = _err(_zip(tmp_path, drop=(missing,)))
    assert e.check == "missing-file"
    assert (missing if missing != "model.safetensors" else "safetensors") in str(e)


def test_weights_file_named_in_config_must_exist(tmp_path: Path) -> None:
    yaml = b"modality: image\nmodel:\n  weights_file: other.safetensors\n"
    e = _err(_zip(tmp_path, {"model_config.yaml": yaml}))
    assert e.check == "missing-file" and "other.safetensors" in str(e)


@pytest.mark.parametrize("yaml,field", [
    (b"modality: image\nmodel: {num_classes: 0}\n", "model.num_classes"),
    (b"modality: image\npreprocessing: {resize: [8, 8]}\n", "preprocessing.resize[0]"),
    (b"modality: image\ndtype: int8\n", "dtype"),
    (b"name: x\n", "modality"),
    (b"modality: image\nmodel: {weights_file: ../model.safetensors}\n", "model.weights_file"),
    (b"modality: video\npreprocessing: {num_frames: 100}\n", "preprocessing.num_frames"),
    (b"modality: [image\n", "invalid YAML"),
])
def test_bad_yaml_fields_are_named(tmp_path: Path, yaml: bytes, field: str) -> None:
    e = _err(_zip(tmp_path, {"model_config.yaml": yaml}))
    assert e.check == "config" and f"model_config.yaml: {field}" in str(e)


def test_directory_symlinks_and_subdirectories(tmp_path: Path) -> None:
    d = write_dir(tmp_path / "pkg", package_files())
    (d / "model.safetensors").unlink()
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(tiny_safetensors())
    os.symlink(secret, d / "model.safetensors")
    assert _err(d).check == "symlink"
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").write_bytes(tiny_safetensors())
    (d / "sub").mkdir()
    assert _err(d).check == "nested-path"


# -- safetensors ----------------------------------------------------------------------------------------


def _st(tmp_path: Path, data: bytes) -> PackageError:
    p = tmp_path / "model.safetensors"
    p.write_bytes(data)
    with pytest.raises(PackageError) as exc:
        check_safetensors(p)
    assert exc.value.check == "safetensors-header"
    return exc.value


def test_pickle_disguised_as_safetensors_in_a_package(tmp_path: Path) -> None:
    z = _zip(tmp_path, {"model.safetensors": pickle.dumps({"w": [1.0, 2.0]})})
    e = _err(z)
    assert e.check == "safetensors-header" and "pickle" in str(e) and "model.safetensors" in str(e)


def test_torch_save_zip_disguised_as_safetensors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    e = _st(tmp_path, buf.getvalue())
    assert "torch.save" in str(e) and "pickle" in str(e)


def test_valid_safetensors_info(tmp_path: Path) -> None:
    p = tmp_path / "w.safetensors"
    p.write_bytes(tiny_safetensors())
    info = check_safetensors(p)
    assert info.tensors == 2 and info.parameters == 8 and info.dtypes == ("F16", "F32")


def test_header_length_that_looks_like_a_pickle_marker_is_fine(tmp_path: Path) -> None:
    # A header of 0x280 bytes starts the file with 80 02, the same bytes as a protocol-2 pickle.
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    data = raw_safetensors(header.ljust(0x280), b"\0" * 4)
    assert data[:2] == b"\x80\x02"
    p = tmp_path / "w.safetensors"
    p.write_bytes(data)
    assert check_safetensors(p).tensors == 1


@pytest.mark.parametrize("data,needle", [
    (b"\x01\x02", "too short"),
    (raw_safetensors({}, length=10**9), "exceeds"),
    (raw_safetensors({"a": 1}, length=500), "does not fit"),
    (raw_safetensors(b"[1, 2]"), "does not start with '{'"),
    (raw_safetensors(b"{not json}"), "not valid JSON"),
    (raw_safetensors(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}', b"\0" * 4),
     "duplicate key"),
    (raw_safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
     "beyond the end of the file"),
    (raw_safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 16),
     "expected 8"),
    (raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12), "overlap"),
    (raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8), "hole"),
    (raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 9), "trailing"),
    (raw_safetensors({"a": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "unknown dtype"),
    (raw_safetensors({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "shape"),
    (raw_safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4), "data_offsets"),
    (raw_safetensors({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4), "exactly dtype"),
    (raw_safetensors({"__metadata__": {"k": 1}}), "__metadata__"),
    (raw_safetensors(b'{"a": NaN}'), "not valid JSON"),
    (b"\x93NUMPY\x01\x00" + b"\0" * 20, "numpy"),
])
def test_malformed_safetensors_headers(tmp_path: Path, data: bytes, needle: str) -> None:
    assert needle in str(_st(tmp_path, data))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_package_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("st") / "x.safetensors"
    p.write_bytes(data)
    try:
        check_safetensors(p)
    except PackageError:
        pass


def test_corrupted_zips_only_raise_package_error(tmp_path: Path) -> None:
    import random

    base = write_zip(tmp_path / "base.zip", {**package_files(), "README.md": b"hello"}).read_bytes()
    rng = random.Random(1234)
    for i in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        p = tmp_path / f"m{i}.zip"
        p.write_bytes(bytes(data))
        try:
            load_package(p, static_check=False).cleanup()
        except PackageError:
            pass
