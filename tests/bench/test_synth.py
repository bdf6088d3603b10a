"""The offline synth datasets: real media of the stated kind, right labels, deterministic for a seed."""

from __future__ import annotations

import hashlib
import socket

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from synth_data import synth_once, synth_root

from gas.bench.dataset import DatasetError, LocalDataset, find_local
from gas.bench.synth import SYNTH_DATASETS, SYNTH_NAMES, espeak, synthesize
from gas.types import MediaLabel, Modality

N = 6


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    return synth_once(tmp_path_factory, n=N)


def test_every_synth_dataset_is_made_with_its_label_and_modality(synth, tmp_path_factory):
    assert list(synth) == list(SYNTH_NAMES)
    for spec in SYNTH_DATASETS:
        ds = synth[spec.name]
        assert len(ds) == N and ds.modality is spec.modality and ds.labels == {spec.label}
        for s in ds.samples():
            assert s.sample_id.startswith(f"{spec.name}:") and s.source.startswith("synth:")
            assert s.generator_model == spec.generator_model
            assert ds.verify(s)
    # the datasets are plain local datasets on disk, found like any other
    root = synth_root(tmp_path_factory, n=N)
    assert [p.name for p in find_local(root)] == sorted(SYNTH_NAMES)
    assert len(LocalDataset(root / "synth-gan-images")) == N
    # both classes in every modality
    for m in Modality:
        assert {s.label.binary for s in SYNTH_DATASETS if s.modality is m} == {0, 1}


@pytest.mark.parametrize("name", ["synth-real-images", "synth-diffusion-images", "synth-gan-images"])
def test_images_decode_and_vary(synth, name):
    formats, sizes = set(), set()
    for s in synth[name].samples():
        with Image.open(s.path) as img:
            img.load()
            formats.add(img.format)
            sizes.add(img.size)
            assert img.mode == "RGB" and 48 <= min(img.size) and max(img.size) <= 400
            assert s.path.suffix == {"JPEG": ".jpg", "PNG": ".png"}[img.format]
            assert np.asarray(img).std() > 5  # not a flat image
    assert formats == {"JPEG", "PNG"}  # both, in every image dataset (format is no label shortcut)
    assert len(sizes) >= 3


@pytest.mark.parametrize("name", ["synth-real-video", "synth-fake-video"])
def test_videos_are_h264_yuv420p_clips(synth, name):
    for s in synth[name].samples():
        with av.open(str(s.path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert 8 <= len(frames) <= 24
        h, w, _ = frames[0].shape
        assert 64 <= w <= 128 and 64 <= h <= 128 and w % 2 == 0 and h % 2 == 0
        assert float(np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean()) > 1  # it moves


@pytest.mark.parametrize("name", ["synth-real-audio", "synth-fake-audio"])
def test_audio_files_are_wav_or_flac_of_2_to_8_seconds(synth, name):
    formats, rates, durations = set(), set(), []
    for s in synth[name].samples():
        info = sf.info(str(s.path))
        wave, sr = sf.read(str(s.path), dtype="float32")
        formats.add(info.format)
        rates.add(sr)
        durations.append(len(wave) / sr)
        assert info.channels == 1 and s.path.suffix == {"WAV": ".wav", "FLAC": ".flac"}[info.format]
        assert float(np.sqrt(np.mean(wave**2))) > 0.01  # not silence
    assert formats == {"WAV", "FLAC"} and rates <= {16_000, 22_050}
    assert all(2.0 <= d <= 8.0 for d in durations)
    assert min(durations) < 6.0 < max(durations)  # both the pad and the crop path of a 6 s window


def test_espeak_child_process_speaks():
    rate, waves = espeak([{"text": "hello world", "voice": "en", "rate": 170, "pitch": 50}])
    assert rate == 22_050 and waves[0].dtype == np.int16 and len(waves[0]) > rate // 2


def test_same_seed_same_bytes_and_no_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("synthesize tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)

    def shas(root, seed):
        return {ds.name: [s.sha256 for s in ds.samples()] for ds in synthesize(root, n=2, seed=seed)}

    first, second = shas(tmp_path / "a", 0), shas(tmp_path / "b", 0)
    assert first == second
    assert len({h for hs in first.values() for h in hs}) == 2 * len(SYNTH_NAMES)  # every sample differs
    other = {ds.name: [s.sha256 for s in ds.samples()] for ds in synthesize(
        tmp_path / "c", n=2, seed=1, modalities=["audio"], names=["synth-fake-audio"])}
    assert other["synth-fake-audio"] != first["synth-fake-audio"]


def test_synthesize_subsets_and_replaces(tmp_path):
    made = synthesize(tmp_path, n=1, modalities=[Modality.AUDIO])
    assert [d.name for d in made] == ["synth-real-audio", "synth-fake-audio"]
    again = synthesize(tmp_path, n=2, modalities=["audio"], names=["synth-fake-audio"])
    assert len(again) == 1 and len(LocalDataset(tmp_path / "synth-fake-audio")) == 2
    assert LocalDataset(tmp_path / "synth-fake-audio").labels == {MediaLabel.SYNTHETIC}
    calls = []
    synthesize(tmp_path, n=2, names=["synth-fake-audio"], progress=lambda *a: calls.append(a))
    assert calls == [("synth-fake-audio", 0, 2), ("synth-fake-audio", 1, 2), ("synth-fake-audio", 2, 2)]


def test_synthesize_rejects_bad_arguments(tmp_path):
    with pytest.raises(DatasetError, match="n must be at least 1"):
        synthesize(tmp_path, n=0)
    with pytest.raises(DatasetError, match="unknown synth dataset"):
        synthesize(tmp_path, names=["synth-nope"])
    with pytest.raises(ValueError):
        synthesize(tmp_path, modalities=["text"])


def test_synth_sha256_matches_file_bytes(synth):
    s = synth["synth-real-video"].samples()[0]
    assert hashlib.sha256(s.path.read_bytes()).hexdigest() == s.sha256
