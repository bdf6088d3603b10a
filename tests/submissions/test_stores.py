"""Model stores: the file store on disk, the HF store against a fake Hub at the httpx seam."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import huggingface_hub
import pytest
from fake_hf_hub import FakeHub

from gas.config import DiscriminatorSettings, load_settings
from gas.submissions import stores
from gas.submissions.stores import (
    FileStore,
    HashMismatch,
    HFStore,
    ModelStore,
    ObjectNotFound,
    ObjectTooLarge,
    StoreError,
    open_store,
)

DATA = b"PK\x03\x04 a detector package" * 50
SHA = hashlib.sha256(DATA).hexdigest()
MB = 1 << 20

# huggingface_hub's LFS PUT passes a file object as data=, which httpx2 deprecates: not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


# --------------------------------------------------------------------------------------------
# file://
# --------------------------------------------------------------------------------------------
def test_file_store_layout_and_round_trip(tmp_path):
    store = FileStore(tmp_path / "models")
    assert isinstance(store, ModelStore)
    obj = store.put(DATA, sha256=SHA)
    assert (obj.ref, obj.sha256, obj.size) == (SHA, SHA, len(DATA))
    path = tmp_path / "models" / "sha256" / SHA[:2] / f"{SHA}.zip"
    assert path.read_bytes() == DATA
    assert store.uri == f"file://{tmp_path / 'models'}"
    assert store.get(obj.ref, expected_sha256=SHA, max_bytes=MB) == DATA


def test_file_store_put_is_idempotent_without_rewriting(tmp_path):
    store = FileStore(tmp_path)
    first = store.put(DATA)
    before = os.stat(store.path_for(SHA))
    second = store.put(DATA, sha256=SHA)
    after = os.stat(store.path_for(SHA))
    assert first == second
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_file_store_put_checks_the_given_hash(tmp_path):
    store = FileStore(tmp_path)
    with pytest.raises(HashMismatch):
        store.put(DATA, sha256="0" * 64)
    assert not (tmp_path / "sha256").exists()


def test_file_store_put_repairs_a_corrupted_copy(tmp_path):
    store = FileStore(tmp_path)
    store.put(DATA)
    store.path_for(SHA).write_bytes(b"garbage")
    store.put(DATA)
    assert store.get(SHA, expected_sha256=SHA, max_bytes=MB) == DATA


def test_file_store_write_is_atomic(tmp_path, monkeypatch):
    store = FileStore(tmp_path)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stores.os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match="No space left"):
        store.put(DATA)
    folder = store.path_for(SHA).parent
    assert list(folder.iterdir()) == []  # neither the target nor a temp file


def test_file_store_get_detects_tampering(tmp_path):
    store = FileStore(tmp_path)
    store.put(DATA)
    tampered = bytearray(DATA)
    tampered[10] ^= 1
    store.path_for(SHA).write_bytes(bytes(tampered))
    with pytest.raises(HashMismatch) as exc:
        store.get(SHA, expected_sha256=SHA, max_bytes=MB)
    assert exc.value.expected == SHA


def test_file_store_get_checks_expected_hash_not_just_ref(tmp_path):
    store = FileStore(tmp_path)
    store.put(DATA)
    with pytest.raises(HashMismatch):
        store.get(SHA, expected_sha256="1" * 64, max_bytes=MB)


def test_file_store_get_limits(tmp_path):
    store = FileStore(tmp_path)
    store.put(DATA)
    with pytest.raises(ObjectTooLarge):
        store.get(SHA, expected_sha256=SHA, max_bytes=len(DATA) - 1)
    with pytest.raises(ObjectNotFound):
        store.get("a" * 64, expected_sha256="a" * 64, max_bytes=MB)


@pytest.mark.parametrize(
    "ref",
    [
        "../../etc/passwd",
        "../" + SHA[3:],
        SHA.upper(),
        SHA[:63],
        SHA + "0",
        "/" + SHA[1:],
        "",
        "ab/" + SHA[3:],
    ],
)
def test_file_store_refuses_refs_that_are_not_hex(tmp_path, ref):
    store = FileStore(tmp_path / "store")
    (tmp_path / "etc").mkdir()
    with pytest.raises(StoreError, match="64 lowercase hex") as exc:
        store.get(ref, expected_sha256=SHA, max_bytes=MB)
    assert not isinstance(exc.value, ObjectNotFound)


# --------------------------------------------------------------------------------------------
# open_store
# --------------------------------------------------------------------------------------------
def test_open_store_by_uri(tmp_path):
    fs = open_store(f"file://{tmp_path}/m")
    assert isinstance(fs, FileStore) and fs.root == tmp_path / "m"
    hf = open_store("hf://gas-org/detectors@dev", cache_dir=tmp_path, hf_api=object())
    assert isinstance(hf, HFStore)
    assert (hf.repo_id, hf.revision, hf.uri) == ("gas-org/detectors", "dev", "hf://gas-org/detectors@dev")
    assert hf.cache_dir == tmp_path / "hf"
    assert open_store("hf://gas-org/detectors", hf_api=object()).uri == "hf://gas-org/detectors"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://bucket/models", "unknown model store 's3'"),
        ("/plain/path", "unknown model store"),
        ("", "empty"),
        ("file://", "names no directory"),
        ("hf://not-a-repo", "not a Hugging Face repo id"),
        ("hf://org/repo@../x", "bad revision"),
        ("file:///a|b", "must not contain"),
    ],
)
def test_open_store_refuses_bad_uris(uri, message):
    with pytest.raises(StoreError, match=message):
        open_store(uri, hf_api=object())


def test_default_settings_store_is_a_file_store_under_the_cache(tmp_path):
    settings = load_settings(DiscriminatorSettings, env_file=False, overrides={"cache_dir": tmp_path})
    store = open_store(settings.model_store, cache_dir=settings.cache_dir)
    assert isinstance(store, FileStore) and store.root == tmp_path / "models"


def test_hf_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    store = HFStore("gas-org/detectors")
    assert store.token == "hf_from_env"
    assert isinstance(store.api, huggingface_hub.HfApi)
    assert HFStore("gas-org/detectors", token="explicit").token == "explicit"


# --------------------------------------------------------------------------------------------
# hf:// against the fake Hub (real huggingface_hub client, fake HTTP endpoints via httpx2 MockTransport)
# --------------------------------------------------------------------------------------------
@pytest.fixture
def hub(monkeypatch):
    # Xet uploads go through native code with its own HTTP stack: take the LFS path instead.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    with FakeHub().installed() as fake:  # any request it does not route fails the test
        yield fake


@pytest.fixture
def hf_store(hub, tmp_path):
    api = huggingface_hub.HfApi(endpoint=hub.endpoint, token="hf_test")
    return HFStore(hub.repo_id, token="hf_test", api=api, cache_dir=tmp_path / "hf")


def test_hf_put_commits_the_file_and_pins_the_commit(hub, hf_store):
    obj = hf_store.put(DATA, sha256=SHA)
    assert obj.ref == hub.head() and len(obj.ref) == 40
    assert hub.commits[obj.ref] == {f"models/{SHA}.zip": SHA}
    assert hub.blobs[SHA] == DATA
    assert SHA[:12] in hub.commit_messages[obj.ref]
    # the real client spoke the real protocol: preupload, LFS batch, PUT, verify, commit
    for method, fragment in [
        ("POST", "/preupload/main"),
        ("POST", "/info/lfs/objects/batch"),
        ("PUT", f"/fake-lfs/{SHA}"),
        ("POST", "/verify"),
        ("POST", "/commit/main"),
    ]:
        assert hub.count(method, fragment) == 1, (method, fragment, hub.calls)
    assert set(a for a in hub.auth if a) == {"Bearer hf_test"}


def test_hf_put_is_idempotent(hub, hf_store):
    first = hf_store.put(DATA)
    second = hf_store.put(DATA)
    assert first == second
    assert hub.count("POST", "/commit/") == 1


def test_hf_ref_stays_pinned_when_the_branch_moves(hub, hf_store):
    old = hf_store.put(DATA)
    other = b"another package" * 10
    new = hf_store.put(other)
    assert new.ref != old.ref and hub.head() == new.ref
    assert hf_store.get(old.ref, expected_sha256=SHA, max_bytes=MB) == DATA
    assert hf_store.get(new.ref, expected_sha256=hashlib.sha256(other).hexdigest(), max_bytes=MB) == other


def test_hf_get_downloads_the_pinned_commit_and_verifies(hub, hf_store):
    obj = hf_store.put(DATA)
    assert hf_store.get(obj.ref, expected_sha256=SHA, max_bytes=MB) == DATA
    assert hub.count("GET", f"/resolve/{obj.ref}/models/{SHA}.zip") == 1
    assert any(Path(hf_store.cache_dir).rglob(f"{SHA}.zip"))


def test_hf_tampered_download_is_refused_and_not_cached(hub, hf_store):
    obj = hf_store.put(DATA)
    path = f"models/{SHA}.zip"
    evil = bytearray(DATA)
    evil[5] ^= 0xFF
    hub.tamper(obj.ref, path, bytes(evil))
    with pytest.raises(HashMismatch):
        hf_store.get(obj.ref, expected_sha256=SHA, max_bytes=MB)
    assert not [
        p for p in Path(hf_store.cache_dir).rglob("*") if p.is_file() and p.read_bytes() == bytes(evil)
    ]
    hub.tampered.clear()  # the hub serves the right bytes again: a fresh download succeeds
    assert hf_store.get(obj.ref, expected_sha256=SHA, max_bytes=MB) == DATA


def test_hf_get_refuses_oversized_objects_before_downloading(hub, hf_store):
    obj = hf_store.put(DATA)
    with pytest.raises(ObjectTooLarge):
        hf_store.get(obj.ref, expected_sha256=SHA, max_bytes=100)
    assert hub.count("GET", "/resolve/") == 0


def test_hf_get_errors(hub, hf_store):
    obj = hf_store.put(DATA)
    with pytest.raises(StoreError, match="40-hex"):
        hf_store.get("main", expected_sha256=SHA, max_bytes=MB)
    with pytest.raises(ObjectNotFound):
        hf_store.get("f" * 40, expected_sha256=SHA, max_bytes=MB)
    with pytest.raises(ObjectNotFound):
        hf_store.get(obj.ref, expected_sha256="b" * 64, max_bytes=MB)


def test_hf_upload_failure_is_a_store_error(hub, hf_store):
    hub.fail_commits = 403
    with pytest.raises(StoreError, match="upload of models/.* failed"):
        hf_store.put(DATA)
