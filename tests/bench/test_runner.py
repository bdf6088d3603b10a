"""run_benchmark: real sandboxed runs on tiny PNG/WAV datasets, plus failure handling with a fake sandbox."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bench_run_fakes import (
    SerialDecodePool,
    audio_dataset,
    image_dataset,
    nan_package,
    serial_pool_factory,
    shrink_image_package,
)
from detector_packages import package_files, write_dir
from sandbox_packages import require_bwrap

from gas.bench.records import CHECKPOINT_NAME, Checkpoint
from gas.bench.results import BenchResults, scores_from_records
from gas.bench.runner import BenchmarkAborted, BenchmarkError, aug_name, run_benchmark
from gas.submissions import sandbox as sb
from gas.submissions.templates import init_package
from gas.types import Modality


# --------------------------------------------------------------------------------------------------
# fixtures shared by the real sandboxed runs


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    real = image_dataset(root, "t-real", "real", 7, seed=1)
    fake = image_dataset(root, "t-fake", "synthetic", 6, seed=2, corrupt=1, hotkeys=("5HotA", "5HotB"))
    return [real, fake]


@pytest.fixture(scope="module")
def image_pkg(tmp_path_factory):
    pkg = init_package("image", tmp_path_factory.mktemp("pkg") / "img", seed=0)
    return shrink_image_package(pkg)


def bench(pkg, datasets, results_dir, **kw):
    args = dict(datasets=datasets, mode="full", seed=5, batch_size=4, results_dir=results_dir,
                decode_pool_factory=serial_pool_factory, device="cpu")
    args.update(kw)
    return run_benchmark(pkg, **args)


@pytest.fixture(scope="module")
def baseline(image_pkg, media, tmp_path_factory):
    require_bwrap()
    out = tmp_path_factory.mktemp("baseline")
    res = bench(image_pkg, media, out)
    return res, out


def by_sample(results_dir: Path) -> dict:
    rows = pq.read_table(results_dir / "records.parquet").to_pylist()
    keys = [(r["dataset"], r["sample_id"], r["aug"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate records"
    return {k: r for k, r in zip(keys, rows, strict=True)}


# --------------------------------------------------------------------------------------------------
# real sandbox


def test_real_sandboxed_run_scores_every_sample(baseline, media):
    res, out = baseline
    assert res.complete and res.environment.isolation == "bwrap" and res.environment.device == "cpu"
    assert res.environment.torch_version
    assert res.counts.planned == 14 and res.counts.recorded == 14 and res.counts.remaining == 0
    assert res.counts.decode_error == 1 and res.counts.ok == 13
    assert res.overall.n == 14  # the corrupt file is a record, not a gap
    assert set(res.per_dataset) == {"t-real", "t-fake"}
    assert res.per_dataset["t-fake"].statuses["decode_error"] == 1
    assert set(res.per_generator) == {"5HotA", "5HotB"}
    assert res.exam is None and res.mode == "full"
    assert res.timings.startup_s > 0 and res.timings.infer_s > 0 and res.timings.samples_per_s > 0
    rows = by_sample(out)
    broken = [r for r in rows.values() if r["status"] == "decode_error"]
    assert len(broken) == 1 and broken[0]["p_synthetic"] == 0.0 and broken[0]["y"] == 1
    assert broken[0]["correct"] is False and "broken_000.png" in broken[0]["error"]
    for r in rows.values():
        if r["status"] == "ok":
            assert len(r["logits"]) == 2 and 0.0 <= r["p_synthetic"] <= 1.0
            assert r["predicted"] == int(r["p_synthetic"] > 0.5)
    # batches of 4 mix labels
    batches = {}
    for r in rows.values():
        batches.setdefault(r["batch_index"], set()).add(r["y"])
    assert all(len(v) == 2 for v in list(batches.values())[:3])
    # results.json agrees exactly with records.parquet, and is strict JSON
    on_disk = BenchResults.load(out / "results.json")
    assert on_disk == res
    assert scores_from_records(pq.read_table(out / "records.parquet")) == on_disk.scores
    json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert not (out / CHECKPOINT_NAME).exists()
    plan = json.loads((out / "plan.json").read_text())
    assert plan["plan_hash"] == res.plan_hash and len(plan["entries"]) == 14


def test_resume_after_a_crash_matches_an_uninterrupted_run(baseline, image_pkg, media, tmp_path):
    base_res, base_out = baseline
    out = tmp_path / "crashy"

    def crash_after_first_batch(ev):
        if ev.batch_index >= 0:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        bench(image_pkg, media, out, progress=crash_after_first_batch)
    assert not (out / "results.json").exists()
    header, recorded, _ = Checkpoint(out).read()
    assert header["plan_hash"] == base_res.plan_hash and len(recorded) == 4

    pools_before = len(SerialDecodePool.instances)
    res = bench(image_pkg, media, out)
    assert SerialDecodePool.instances[pools_before].decoded == 10  # only the 10 remaining samples
    assert res.complete and res.resumed and res.timings.sessions == 2 and res.timings.samples_this_session == 10
    assert res.scores == base_res.scores
    a, b = by_sample(out), by_sample(base_out)
    assert a.keys() == b.keys()
    assert all(a[k]["p_synthetic"] == b[k]["p_synthetic"] and a[k]["status"] == b[k]["status"] for k in a)
    assert not (out / CHECKPOINT_NAME).exists()
    # a complete results dir is not overwritten silently
    with pytest.raises(BenchmarkError, match="already holds results"):
        bench(image_pkg, media, out)


def test_wall_clock_limit_writes_a_partial_result_then_resumes(baseline, image_pkg, media, tmp_path):
    base_res, _ = baseline
    out = tmp_path / "limited"
    offset = [0.0]

    def clock():
        return time.monotonic() + offset[0]

    def jump_after_first_batch(ev):
        if ev.batch_index >= 0:
            offset[0] = 10_000.0

    res = bench(image_pkg, media, out, mode="small", wall_limit_s=600, clock=clock, progress=jump_after_first_batch)
    assert not res.complete and res.wall_limit_hit and res.counts.recorded == 4 and res.counts.remaining == 10
    assert res.exam is not None and not res.exam.passed and "did not complete" in res.exam.reason
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["complete"] is False
    assert pq.read_table(out / "records.parquet").num_rows == 4
    assert (out / CHECKPOINT_NAME).exists()  # kept, so the run can be resumed

    done = bench(image_pkg, media, out, mode="small")
    assert done.complete and not done.wall_limit_hit and done.counts.recorded == 14
    assert done.scores == base_res.scores  # small mode's cap (64) keeps all 14 samples: same plan content
    assert done.exam is not None and done.exam.accuracy == done.overall.accuracy


def test_nan_rows_are_maximally_wrong_and_the_robustness_pass_blends(media, tmp_path):
    require_bwrap()
    pkg = nan_package(tmp_path / "nanpkg")
    ds = [image_dataset(tmp_path / "m", "b-real", "real", 6, seed=3, bright=0.5),
          image_dataset(tmp_path / "m", "b-fake", "synthetic", 6, seed=4, bright=0.5)]
    res = bench(pkg, ds, tmp_path / "out", aug_weight=0.5, aug_per_dataset=3)
    rows = by_sample(tmp_path / "out")
    invalid = [r for r in rows.values() if r["status"] == "invalid_output"]
    assert invalid and len(invalid) < len(rows)
    for r in invalid:
        assert r["p_synthetic"] == 1 - r["y"] and not r["correct"]
        assert any(np.isnan(r["logits"]))
    assert res.counts.invalid_output == len(invalid)
    rob = res.robustness
    assert rob is not None and rob.n == 6 and res.counts.recorded_aug == 6
    assert res.score == rob.final_sn34 == pytest.approx(0.5 * rob.base_sn34 + 0.5 * rob.aug_sn34)
    assert {r["aug"] for r in rows.values()} == {None, aug_name(5)}
    assert scores_from_records(pq.read_table(tmp_path / "out" / "records.parquet"), aug_weight=0.5) == res.scores


def test_real_sandboxed_audio_run(tmp_path):
    require_bwrap()
    pkg = init_package("audio", tmp_path / "apkg", seed=1)
    ds = [audio_dataset(tmp_path / "a", "a-real", "real", 3, seed=1),
          audio_dataset(tmp_path / "a", "a-fake", "synthetic", 3, seed=2)]
    res = bench(pkg, ds, tmp_path / "out", mode="small", batch_size=3, aug_weight=0.2)
    assert res.complete and res.counts.ok == 6 and res.modality == "audio"
    assert res.robustness is None  # the robustness pass is image/video only
    assert res.exam is not None and res.exam.passed == (res.overall.accuracy >= 0.8)


def test_real_sandboxed_video_run(tmp_path):
    require_bwrap()
    pkg = shrink_image_package(init_package("video", tmp_path / "vpkg", seed=2))
    cfg = pkg / "model_config.yaml"
    cfg.write_text(cfg.read_text().replace("num_frames: 16", "num_frames: 4"))
    ds = []
    for name, label, seed in (("v-real", "real", 1), ("v-fake", "synthetic", 2)):
        imgs = image_dataset(tmp_path / "v", name, label, 3, seed=seed)  # stills; the stand-in repeats frames
        imgs.modality = Modality.VIDEO
        imgs.items = [dataclasses.replace(s, modality=Modality.VIDEO) for s in imgs.items]
        ds.append(imgs)
    seen = []

    def pool(**kw):
        p = serial_pool_factory(**kw)
        orig = p.imap

        def imap(samples, key):
            seen.append(key)
            return orig(samples, key)

        p.imap = imap
        return p

    res = bench(pkg, ds, tmp_path / "out", batch_size=4, decode_pool_factory=pool, aug_weight=0.2, aug_per_dataset=1)
    assert res.complete and res.modality == "video" and res.counts.ok == 8
    assert [k.shape for k in seen] == [(4, 3, 32, 32)] * 2 and seen[1].aug == aug_name(5)


def test_modality_mismatch_is_refused_before_anything_runs(image_pkg, tmp_path):
    ds = [audio_dataset(tmp_path / "a", "a-real", "real", 1, seed=1)]

    def never(*a, **k):
        pytest.fail("the sandbox must not be opened")

    with pytest.raises(BenchmarkError, match=r"image detector.*a-real \(audio\)"):
        run_benchmark(image_pkg, datasets=ds, results_dir=tmp_path / "out", sandbox_opener=never,
                      decode_pool_factory=never)
    assert not (tmp_path / "out").exists()


def test_invalid_package_is_a_clear_error(tmp_path, media):
    bad = write_dir(tmp_path / "bad", {**package_files("image"), "evil.py": b"import os\n"})
    with pytest.raises(BenchmarkError, match="invalid package.*evil.py"):
        run_benchmark(bad, datasets=media, results_dir=tmp_path / "out")


# --------------------------------------------------------------------------------------------------
# a fake sandbox: failure handling without subprocesses


class FakeBox:
    """Logits from the mean pixel; ``plan`` maps the n-th infer call to an exception to raise."""

    opened = 0

    def __init__(self, plan: dict[int, Exception], calls: list[int]) -> None:
        FakeBox.opened += 1
        self.plan, self.calls = plan, calls
        self.isolation = sb.Isolation.NONE
        self.device, self.startup_s, self.info, self.closed = "cpu", 0.01, {"torch": "fake"}, False

    def infer(self, batch):
        self.calls.append(len(batch))
        exc = self.plan.get(len(self.calls))
        if exc is not None:
            if isinstance(exc, (sb.SandboxTimeout, sb.SandboxCrashed)):
                self.closed = True
            raise exc
        m = batch.reshape(len(batch), -1).mean(axis=1).astype(np.float32) / 255.0
        return np.stack([1 - m, m], axis=1)

    def close(self):
        self.closed = True


def fake_opener(plan=None, *, fail_on_open: int | None = None, exc: Exception | None = None):
    calls: list[int] = []
    opens = [0]

    def opener(spec, **kw):
        opens[0] += 1
        if fail_on_open is not None and opens[0] >= fail_on_open:
            raise exc
        return FakeBox(plan or {}, calls)

    opener.calls, opener.opens = calls, opens
    return opener


@pytest.fixture()
def cheap_pkg(tmp_path):
    # format-valid package; the fake sandbox never runs its code
    files = package_files("image")
    return write_dir(tmp_path / "cheap", files)


def test_model_errors_on_a_batch_become_inference_error_records(cheap_pkg, media, tmp_path):
    opener = fake_opener({2: sb.SandboxInferenceError("model raised during forward: boom"),
                          3: sb.SandboxOutputError("invalid model output: 3 rows for a batch of 4")})
    res = bench(cheap_pkg, media, tmp_path / "o", sandbox_opener=opener)
    assert res.complete and res.counts.inference_error == 8 and res.counts.sandbox_restarts == 0
    rows = by_sample(tmp_path / "o")
    bad = [r for r in rows.values() if r["status"] == "inference_error"]
    assert {r["batch_index"] for r in bad} == {1, 2}
    assert all(r["p_synthetic"] == 1 - r["y"] and r["logits"] == [] for r in bad)
    assert any("boom" in e for e in res.errors)
    assert res.environment.isolation == "none"


def test_timeouts_and_crashes_restart_the_sandbox_then_abort(cheap_pkg, media, tmp_path):
    opener = fake_opener({1: sb.SandboxTimeout("timed out"), 3: sb.SandboxCrashed("died")})
    res = bench(cheap_pkg, media, tmp_path / "o", sandbox_opener=opener)
    assert res.complete and res.counts.sandbox_restarts == 2 and opener.opens[0] == 3
    rows = by_sample(tmp_path / "o").values()
    assert {r["batch_index"] for r in rows if r["status"] == "inference_error"} == {0, 2}
    assert all(r["status"] in ("inference_error", "decode_error") for r in rows if r["batch_index"] in (0, 2))

    always = fake_opener({i: sb.SandboxCrashed("died") for i in range(1, 20)})
    with pytest.raises(BenchmarkAborted, match="max_restarts=1") as info:
        bench(cheap_pkg, media, tmp_path / "o2", sandbox_opener=always, max_restarts=1)
    assert info.value.infrastructure is False
    assert not (tmp_path / "o2" / "results.json").exists()


def test_our_side_failures_abort_without_counting_against_the_miner(cheap_pkg, media, tmp_path):
    unavailable = fake_opener(fail_on_open=1, exc=sb.SandboxUnavailable("no bwrap"))
    with pytest.raises(BenchmarkAborted, match="no sandbox") as info:
        bench(cheap_pkg, media, tmp_path / "o", sandbox_opener=unavailable)
    assert info.value.infrastructure is True
    assert not (tmp_path / "o" / "results.json").exists()
    _, recorded, _ = Checkpoint(tmp_path / "o").read()
    assert recorded == []  # nothing was scored

    def broken_pool(**kw):
        class Pool(SerialDecodePool):
            def imap(self, samples, key):
                raise OSError("worker pool died")
        return Pool()

    with pytest.raises(BenchmarkAborted, match="decode pool failed") as info:
        bench(cheap_pkg, media, tmp_path / "o3", sandbox_opener=fake_opener(), decode_pool_factory=broken_pool)
    assert info.value.infrastructure is True

    load_fail = fake_opener(fail_on_open=1, exc=sb.SandboxLoadError("model failed to load"))
    with pytest.raises(BenchmarkAborted, match="failed to start") as info:
        bench(cheap_pkg, media, tmp_path / "o4", sandbox_opener=load_fail)
    assert info.value.infrastructure is False


def test_checkpoint_of_another_plan_or_package_is_refused_unless_fresh(cheap_pkg, media, tmp_path):
    out = tmp_path / "o"

    def stop(ev):
        if ev.batch_index >= 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bench(cheap_pkg, media, out, sandbox_opener=fake_opener(), progress=stop)
    with pytest.raises(BenchmarkError, match="another plan or package"):
        bench(cheap_pkg, media, out, sandbox_opener=fake_opener(), seed=6)
    with pytest.raises(BenchmarkError, match="resume it"):
        bench(cheap_pkg, media, out, sandbox_opener=fake_opener(), resume=False)
    res = bench(cheap_pkg, media, out, sandbox_opener=fake_opener(), seed=6, fresh=True)
    assert res.complete and not res.resumed and res.seed == 6


def test_batches_reach_the_sandbox_stacked_with_the_key_shape(cheap_pkg, media, tmp_path):
    seen = []

    class Box(FakeBox):
        def infer(self, batch):
            seen.append((batch.shape, batch.dtype))
            return super().infer(batch)

    res = bench(cheap_pkg, media, tmp_path / "o", sandbox_opener=lambda spec, **kw: Box({}, []))
    assert res.complete
    # 14 samples in batches of 4; the corrupt one never reaches the model
    assert len(seen) == 4 and sum(s[0][0] for s in seen) == 13
    assert all(s[0][1:] == (3, 32, 32) and s[1] == np.uint8 for s in seen)


# --------------------------------------------------------------------------------------------------
# integration with the real dataset, preprocessing and decode-pool modules


@pytest.fixture(scope="module")
def synth_images(tmp_path_factory):
    synth = pytest.importorskip("gas.bench.synth")
    root = tmp_path_factory.mktemp("synthds") / "datasets"
    return synth.synthesize(root, n=6, seed=0, modalities=["image"],
                            names=["synth-real-images", "synth-gan-images"])


def test_integration_real_datasets_and_real_preprocessing(image_pkg, synth_images, tmp_path):
    require_bwrap()
    preprocess = pytest.importorskip("gas.bench.preprocess")

    class RealDecodeSerialPool(SerialDecodePool):
        def imap(self, samples, key):
            for s in samples:
                t0 = time.perf_counter()
                try:
                    out = preprocess.decode_and_preprocess(Path(s.path).read_bytes(), key)
                except preprocess.DecodeError as exc:
                    out = exc
                yield s, out, time.perf_counter() - t0

    res = run_benchmark(image_pkg, datasets=synth_images, mode="small", seed=1, batch_size=4,
                        results_dir=tmp_path / "o", device="cpu", aug_weight=0.2, aug_per_dataset=2,
                        decode_pool_factory=lambda **kw: RealDecodeSerialPool())
    assert res.complete and res.counts.ok == 16 and res.counts.recorded_aug == 4
    assert set(res.per_dataset) == {"synth-real-images", "synth-gan-images"}
    assert res.robustness is not None and res.robustness.weight == 0.2
    rows = by_sample(tmp_path / "o")
    assert {r["aug"] for r in rows.values()} == {None, aug_name(1)}


def test_integration_real_decode_pool_and_tensor_cache(image_pkg, synth_images, tmp_path):
    require_bwrap()
    pytest.importorskip("gas.bench.decode_pool")
    tensor_cache = pytest.importorskip("gas.bench.tensor_cache")
    cache = tensor_cache.TensorCache(tmp_path / "tensors", max_bytes=64 << 20)
    kw = dict(datasets=synth_images, mode="small", seed=1, batch_size=4, device="cpu", cache=cache, workers=2,
              aug_weight=0.2, aug_per_dataset=2)
    first = run_benchmark(image_pkg, results_dir=tmp_path / "a", **kw)  # the real DecodePool
    assert first.complete and first.counts.ok == 16
    hits = cache.stats().hits
    from gas.bench.decode_pool import DecodePool

    warmups = []

    class SpyPool(DecodePool):
        def warmup(self):
            warmups.append(1)
            return super().warmup()

    second = run_benchmark(image_pkg, results_dir=tmp_path / "b",  # served from the tensor cache
                           decode_pool_factory=lambda **k: SpyPool(**k), **kw)
    assert cache.stats().hits - hits == 16
    assert warmups == []  # everything was cached: no decode worker was started
    assert second.scores == first.scores
    a, b = by_sample(tmp_path / "a"), by_sample(tmp_path / "b")
    assert all(a[k]["logits"] == b[k]["logits"] for k in a)
