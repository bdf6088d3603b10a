"""Importing media: folders (bytes preserved exactly) and Hugging Face dataset repos (against a fake Hub).

The HF tests run the real ``huggingface_hub`` client (``HfApi.repo_info``, ``list_repo_tree`` with
pagination, ``hf_hub_download``) against ``tests/support/fake_hf_hub.py``, which answers the Hub's
dataset-repo endpoints from memory. They prove the importer speaks that protocol (URLs, revision
pinning, pagination, auth header, error codes) and maps each Hub failure to a clear error; they do
not prove anything about real repos' layouts, gated-repo flows or the Xet transfer.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_hf_hub import FakeHub
from PIL import Image

from gas.bench.dataset import DatasetError, LocalDataset
from gas.bench.importer import import_folder, import_hf, sniff_media
from gas.bench.synth import encode_audio, encode_video
from gas.types import MediaLabel, Modality


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def image_bytes(color, fmt="PNG", size=(12, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def media_folder(tmp_path) -> Path:
    src = tmp_path / "src"
    (src / "cats" / "deep").mkdir(parents=True)
    files = {
        "a.jpg": image_bytes("red", "JPEG"),
        "b.PNG": image_bytes("blue"),
        "cats/c.webp": image_bytes("green", "WEBP"),
        "cats/deep/d.bmp": image_bytes("white", "BMP"),
        "cats/e.gif": image_bytes("black", "GIF"),
        "notes.txt": b"not media",  # wrong extension: never considered
        "broken.jpg": b"<html>404</html>",  # right extension, wrong bytes: skipped, counted
        "empty.png": b"",
        ".hidden.jpg": image_bytes("red", "JPEG"),
    }
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    os.symlink(src / "gone.jpg", src / "dangling.jpg")  # unreadable: skipped, counted
    return src


# --------------------------------------------------------------------------------------------
# sniffing
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (image_bytes("red", "JPEG"), (Modality.IMAGE, ".jpg")),
        (image_bytes("red", "PNG"), (Modality.IMAGE, ".png")),
        (image_bytes("red", "WEBP"), (Modality.IMAGE, ".webp")),
        (image_bytes("red", "GIF"), (Modality.IMAGE, ".gif")),
        (image_bytes("red", "TIFF"), (Modality.IMAGE, ".tif")),
        (encode_audio(np.zeros(1600, np.float32), 16000, "wav"), (Modality.AUDIO, ".wav")),
        (encode_audio(np.zeros(1600, np.float32), 16000, "flac"), (Modality.AUDIO, ".flac")),
        (b"ID3\x04rest", (Modality.AUDIO, ".mp3")),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead", (Modality.AUDIO, ".opus")),
        (b"\x00\x00\x00\x20ftypM4A \x00", (Modality.AUDIO, ".m4a")),
        (b"\x00\x00\x00\x14ftypqt  \x00", (Modality.VIDEO, ".mov")),
        (b"RIFF\x00\x00\x00\x00AVI LIST", (Modality.VIDEO, ".avi")),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", (Modality.VIDEO, ".webm")),
        (b"<html>", None),
        (b"", None),
    ],
)
def test_sniff_media(data, expected):
    assert sniff_media(data) == expected


def test_sniff_real_mp4():
    clip = encode_video([np.zeros((16, 16, 3), np.uint8)] * 2, 8)
    assert sniff_media(clip) == (Modality.VIDEO, ".mp4")


# --------------------------------------------------------------------------------------------
# folder
# --------------------------------------------------------------------------------------------
def test_folder_import_preserves_bytes_exactly(media_folder, tmp_path):
    report = import_folder(media_folder, tmp_path / "datasets", "pets", "image", "real")
    ds = report.dataset
    assert isinstance(ds, LocalDataset) and ds.root == (tmp_path / "datasets" / "pets").resolve()
    assert report.imported == len(ds) == 5
    assert (report.skipped_unreadable, report.skipped_invalid, report.skipped_duplicate) == (1, 2, 0)
    assert any("dangling.jpg: unreadable" in w for w in report.warnings)
    assert any("broken.jpg: not a recognised media file" in w for w in report.warnings)
    assert any("empty.png: empty file" in w for w in report.warnings)
    by_rel = {s.source.split(f"folder:{media_folder.resolve()}/", 1)[1]: s for s in ds.samples()}
    assert sorted(by_rel) == ["a.jpg", "b.PNG", "cats/c.webp", "cats/deep/d.bmp", "cats/e.gif"]
    for rel, s in by_rel.items():
        original = (media_folder / rel).read_bytes()
        assert s.sha256 == sha(original) == sha(s.path.read_bytes())  # not re-encoded
        assert s.path == ds.root / "samples" / rel
        assert s.label is MediaLabel.REAL and ds.verify(s)


def test_folder_import_picks_files_of_the_modality(tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    clip = encode_video([np.full((16, 16, 3), v, np.uint8) for v in (0, 80, 160)], 8)
    (src / "clip.mp4").write_bytes(clip)
    (src / "tone.wav").write_bytes(encode_audio(np.zeros(800, np.float32), 16000, "wav"))
    (src / "pic.png").write_bytes(image_bytes("red"))
    (src / "fake.mp4").write_bytes(image_bytes("red"))  # an image named .mp4
    report = import_folder(src, tmp_path / "d", "clips", Modality.VIDEO, MediaLabel.SYNTHETIC, source="mine")
    assert [s.source for s in report.dataset.samples()] == ["mine/clip.mp4"]
    assert report.dataset.modality is Modality.VIDEO
    assert report.warnings == ["fake.mp4: looks like image (.png), not video"]
    audio = import_folder(src, tmp_path / "d", "sounds", "audio", "real").dataset
    assert [s.path.name for s in audio.samples()] == ["tone.wav"]


def test_folder_import_max_samples_is_a_seeded_subset(tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    for i in range(20):
        (src / f"{i:02d}.png").write_bytes(image_bytes((i * 10, 0, 0)))

    def pick(seed, name):
        ds = import_folder(src, tmp_path / "d", name, "image", "real", max_samples=5, seed=seed).dataset
        return [s.path.name for s in ds.samples()]

    first, again, other = pick(0, "a"), pick(0, "b"), pick(1, "c")
    assert len(first) == 5 and first == again and first != other
    assert first != [f"{i:02d}.png" for i in range(5)]  # not simply the first N in listing order


def test_folder_import_duplicates_and_errors(tmp_path, media_folder):
    (media_folder / "again.jpg").write_bytes((media_folder / "a.jpg").read_bytes())
    report = import_folder(media_folder, tmp_path / "d", "dups", "image", "real")
    assert report.skipped_duplicate == 1 and report.imported == 5
    with pytest.raises(DatasetError, match="is not a directory"):
        import_folder(tmp_path / "absent", tmp_path / "d", "x", "image", "real")
    with pytest.raises(DatasetError, match=r"no audio files \("):
        import_folder(media_folder, tmp_path / "d", "x", "audio", "real")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.jpg").write_bytes(b"nope")
    with pytest.raises(DatasetError, match=r"no usable image files \(1 file\(s\) skipped; first: x.jpg"):
        import_folder(only_bad, tmp_path / "d", "x", "image", "real")
    with pytest.raises(DatasetError, match="already exists"):
        import_folder(media_folder, tmp_path / "d", "dups", "image", "real")
    assert import_folder(media_folder, tmp_path / "d", "dups", "image", "synthetic", overwrite=True).imported == 5


# --------------------------------------------------------------------------------------------
# Hugging Face (fake Hub)
# --------------------------------------------------------------------------------------------
REPO_FILES = {
    "README.md": b"# a dataset card",
    "train/cats/0.png": image_bytes("red"),
    "train/cats/1.jpg": image_bytes("blue", "JPEG"),
    "train/dogs/2.png": image_bytes("green"),
    "test/3.png": image_bytes("white"),
    "test/bad.jpg": b"<html>rate limited</html>",
    "audio/x.wav": encode_audio(np.zeros(800, np.float32), 16000, "wav"),
}


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    fake = FakeHub(repo_id="org/pics", repo_type="dataset", page_size=3)  # small pages: pagination is exercised
    fake.add_files(REPO_FILES)
    with fake.installed():
        yield fake


@pytest.fixture
def api(hub):
    return huggingface_hub.HfApi(endpoint=hub.endpoint, token="hf_test")


def test_hf_import_takes_media_files_at_a_pinned_commit(hub, api, tmp_path):
    commit = hub.head()
    report = import_hf("org/pics", tmp_path, "pics", "image", "synthetic", api=api)
    ds = report.dataset
    assert report.revision == commit
    assert report.imported == len(ds) == 4
    assert report.skipped_invalid == 1 and "test/bad.jpg: not a recognised media file" in report.warnings
    for s in ds.samples():
        repo_path = s.source.removeprefix(f"hf://org/pics@{commit}/")
        assert s.path.read_bytes() == REPO_FILES[repo_path]  # the Hub's bytes, unmodified
        assert s.path == ds.root / "samples" / repo_path and s.label is MediaLabel.SYNTHETIC
    # the real client spoke the Hub's dataset protocol, with the token
    assert hub.count("GET", "/api/datasets/org/pics") >= 1
    assert hub.count("GET", f"/api/datasets/org/pics/tree/{commit}") == 4  # 12 entries (7 files, 5 folders) in pages of 3
    assert hub.count("GET", f"/datasets/org/pics/resolve/{commit}/") == 5
    assert {a for (m, p), a in zip(hub.calls, hub.auth, strict=True) if "org/pics" in p} == {"Bearer hf_test"}
    assert not list(tmp_path.glob(".hf-import-*"))  # the download cache is cleaned up


def test_hf_import_filters_and_subsets(hub, api, tmp_path):
    ds = import_hf("org/pics", tmp_path, "cats", "image", "real", api=api, include=["cats/"]).dataset
    assert sorted(s.path.name for s in ds.samples()) == ["0.png", "1.jpg"]
    ds = import_hf("org/pics", tmp_path, "nocats", "image", "real", api=api, exclude=["cats/", "bad"]).dataset
    assert sorted(s.path.name for s in ds.samples()) == ["2.png", "3.png"]
    ds = import_hf("org/pics", tmp_path, "jpg", "image", "real", api=api, media_type="jpg").dataset
    assert [s.path.name for s in ds.samples()] == ["1.jpg"]
    first = import_hf("org/pics", tmp_path, "two", "image", "real", api=api, max_samples=2, seed=3).dataset
    again = import_hf("org/pics", tmp_path, "two-again", "image", "real", api=api, max_samples=2, seed=3).dataset
    assert len(first) == 2 and [s.sha256 for s in first.samples()] == [s.sha256 for s in again.samples()]
    audio = import_hf("org/pics", tmp_path, "snd", "audio", "real", api=api).dataset
    assert [s.path.name for s in audio.samples()] == ["x.wav"]


def test_hf_import_honours_a_revision(hub, api, tmp_path):
    old = hub.head()
    hub.add_files({"train/cats/0.png": image_bytes("yellow"), "new/5.png": image_bytes("purple")})
    latest = import_hf("org/pics", tmp_path, "latest", "image", "real", api=api).dataset
    pinned = import_hf("org/pics", tmp_path, "pinned", "image", "real", api=api, revision=old).dataset
    assert len(latest) == 5 and len(pinned) == 4
    cat = next(s for s in pinned.samples() if s.path.name == "0.png")
    assert cat.path.read_bytes() == REPO_FILES["train/cats/0.png"] and old in cat.source


def test_hf_import_skips_files_whose_bytes_differ_from_the_hub_listing(hub, api, tmp_path):
    hub.tamper(hub.head(), "train/dogs/2.png", image_bytes("black"))
    report = import_hf("org/pics", tmp_path, "t", "image", "real", api=api)
    assert report.imported == 3
    assert "train/dogs/2.png: sha256 differs from the Hub's LFS oid" in report.warnings


def test_hf_errors_are_clear(hub, api, tmp_path):
    with pytest.raises(DatasetError, match=r"hf://org/absent: no such dataset repo"):
        import_hf("org/absent", tmp_path, "x", "image", "real", api=api)
    with pytest.raises(DatasetError, match=r"revision 'nope' not found"):
        import_hf("org/pics", tmp_path, "x", "image", "real", api=api, revision="nope")
    with pytest.raises(DatasetError, match=r"no video files .* or parquet shards"):
        import_hf("org/pics", tmp_path, "x", "video", "real", api=api)
    with pytest.raises(DatasetError, match="matching the include/exclude filters"):
        import_hf("org/pics", tmp_path, "x", "image", "real", api=api, include=["nothing-here"])
    assert not (tmp_path / "x").exists()


def test_hf_import_reads_media_bytes_out_of_parquet_shards(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    images = [image_bytes((i * 40, 0, 0), "JPEG" if i % 2 else "PNG") for i in range(5)]

    def shard(rows) -> bytes:
        buf = io.BytesIO()
        table = pa.table(
            {
                "image_id": [f"id{i}" for i in rows],
                "image": [{"bytes": images[i], "path": f"{i}.img"} for i in rows],  # an HF Image feature
                "caption": [f"row {i}" for i in rows],
            }
        )
        pq.write_table(table, buf, row_group_size=2)
        return buf.getvalue()

    fake = FakeHub(repo_id="org/shards", repo_type="dataset")
    fake.add_files({"data/train-00000.parquet": shard([0, 1, 2]), "data/train-00001.parquet": shard([3, 4])})
    with fake.installed():
        api = huggingface_hub.HfApi(endpoint=fake.endpoint, token="hf_test")
        ds = import_hf("org/shards", tmp_path, "pq", "image", "semisynthetic", api=api).dataset
        assert sorted(s.sha256 for s in ds.samples()) == sorted(sha(b) for b in images)  # the cells' bytes
        assert {s.path.suffix for s in ds.samples()} == {".png", ".jpg"}  # extension from the bytes
        assert all("#" in s.source and s.source.startswith(f"hf://org/shards@{fake.head()}/data/") for s in ds.samples())
        capped = import_hf("org/shards", tmp_path, "pq2", "image", "real", api=api, max_samples=3).dataset
        assert len(capped) == 3
        with pytest.raises(DatasetError, match="no usable audio files"):
            import_hf("org/shards", tmp_path, "pq3", "audio", "real", api=api)
