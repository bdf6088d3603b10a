"""push_model against a real dev chain file (fake clock) and a file store in tmp."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from devchain_helpers import DevNet, make_identity
from rich.console import Console

from gas.chain.devchain import DevChain
from gas.submissions.commitment import ModelEntry, decode_commitment, encode_commitment
from gas.submissions.stores import FileStore, StoreError
from gas.types import Modality
from neurons.discriminator import push_model
from neurons.discriminator.push_model import EXIT_CODES, PushError, main, push

REPO = Path(__file__).resolve().parents[2]
IMAGE, VIDEO, AUDIO = Modality.IMAGE, Modality.VIDEO, Modality.AUDIO


# --------------------------------------------------------------------------------------------
# fakes for gas.submissions.validate (another module's job): the report shape push relies on
# --------------------------------------------------------------------------------------------
@dataclass
class FakeConfig:
    modality: str


@dataclass
class FakePackage:
    data: bytes
    config: FakeConfig

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    cleaned: int = 0
    changed: bool = False

    def archive_bytes(self) -> bytes:
        if self.changed:  # like gas.submissions.package.PackageError('changed')
            raise ValueError("package changed on disk since it was validated")
        return self.data

    def cleanup(self) -> None:
        self.cleaned += 1


@dataclass
class FakeReport:
    ok: bool
    package: FakePackage | None
    errors: list[str] = field(default_factory=list)


class FakeValidate:
    """validate(path): the package's modality is the file's stem prefix; 'bad*' files fail."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, path: Path, modality=None) -> FakeReport:
        self.calls.append(path)
        data = Path(path).read_bytes()
        if path.name.startswith("bad"):
            return FakeReport(False, None, ["model_config.yaml: missing 'modality'"])
        return FakeReport(True, FakePackage(data, FakeConfig(path.name.split("-")[0])))


class SpyStore(FileStore):
    def __init__(self, root: Path, fail_on: int | None = None) -> None:
        super().__init__(root)
        self.puts = 0
        self.fail_on = fail_on

    def put(self, data, *, sha256=None):
        self.puts += 1
        if self.fail_on is not None and self.puts >= self.fail_on:
            raise StoreError(f"disk quota exceeded in {self.uri}")
        return super().put(data, sha256=sha256)


@pytest.fixture
def net(tmp_path):
    devnet = DevNet.create(tmp_path / "dev.db")
    yield devnet
    devnet.close()


@pytest.fixture
def miner(net):
    ident = make_identity("miner")
    chain, _uid = net.join(ident)
    return chain


@pytest.fixture
def packages(tmp_path):
    folder = tmp_path / "pkgs"
    folder.mkdir()
    out = {}
    for name in ("image-v1", "image-v2", "video-v1", "audio-v1", "bad-image", "video-as-image"):
        p = folder / f"{name}.zip"
        p.write_bytes(f"PK\x03\x04{name}".encode() * 20)
        out[name] = p
    return out


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def run(models, chain, store, net, console=None, **kw):
    return push(
        models,
        chain=chain,
        store=store,
        validate=FakeValidate(),
        console=console or quiet(),
        sleep=net.clock.sleep,
        **kw,
    )


def on_chain(net: DevNet, hotkey: str):
    c = net.admin.commitments()[hotkey]
    return c, decode_commitment(c.data, hotkey)


# --------------------------------------------------------------------------------------------
# happy paths
# --------------------------------------------------------------------------------------------
def test_push_image_then_video_and_audio_keeps_all_three(net, miner, packages, tmp_path):
    store = SpyStore(tmp_path / "models")
    hk = miner.identity.hotkey
    first = run({IMAGE: packages["image-v1"]}, miner, store, net)
    assert set(first.committed) == {IMAGE}
    net.at(150)
    second = run({VIDEO: packages["video-v1"], "audio": packages["audio-v1"]}, miner, store, net)
    commitment, entries = on_chain(net, hk)
    assert set(entries) == {IMAGE, VIDEO, AUDIO}  # ONE commitment holding every modality
    assert entries[IMAGE] == first.committed[IMAGE]
    assert second.committed == entries and set(second.pushed) == {VIDEO, AUDIO}
    assert commitment.block == second.block == 150
    for mod, name in [(IMAGE, "image-v1"), (VIDEO, "video-v1"), (AUDIO, "audio-v1")]:
        data = packages[name].read_bytes()
        e = entries[mod]
        assert e.store_uri == store.uri and e.package_sha256 == hashlib.sha256(data).hexdigest()
        assert store.get(e.ref, expected_sha256=e.package_sha256, max_bytes=1 << 20) == data
    assert [r.block for r in net.admin.commitment_history()] == [0, 150]


def test_replacing_one_modality_keeps_the_others(net, miner, packages, tmp_path):
    store = FileStore(tmp_path / "models")
    run({IMAGE: packages["image-v1"], VIDEO: packages["video-v1"]}, miner, store, net)
    net.at(100)
    run({IMAGE: packages["image-v2"]}, miner, store, net)
    _, entries = on_chain(net, miner.identity.hotkey)
    assert entries[IMAGE].package_sha256 == hashlib.sha256(packages["image-v2"].read_bytes()).hexdigest()
    assert entries[VIDEO].package_sha256 == hashlib.sha256(packages["video-v1"].read_bytes()).hexdigest()


def test_pushing_the_same_thing_again_sends_nothing(net, miner, packages, tmp_path):
    store = FileStore(tmp_path / "models")
    run({IMAGE: packages["image-v1"]}, miner, store, net)
    net.at(3)  # inside the rate limit: a second set_commitment would be refused
    again = run({IMAGE: packages["image-v1"]}, miner, store, net)
    assert again.unchanged and again.waited_s == 0
    assert len(net.admin.commitment_history()) == 1


def test_a_foreign_previous_commitment_is_replaced(net, miner, packages, tmp_path):
    miner.set_commitment(b'{"key": "r2/abc", "hash": "0123456789abcdef"}')
    net.at(100)
    result = run({AUDIO: packages["audio-v1"]}, miner, FileStore(tmp_path / "m"), net)
    assert set(on_chain(net, miner.identity.hotkey)[1]) == {AUDIO}
    assert any("not a readable GAS commitment" in n for n in result.notes)


# --------------------------------------------------------------------------------------------
# rate limit
# --------------------------------------------------------------------------------------------
def test_rate_limit_shows_a_countdown_and_retries(net, miner, packages, tmp_path):
    store = FileStore(tmp_path / "models")
    run({IMAGE: packages["image-v1"]}, miner, store, net)
    net.at(5)
    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=True)
    result = run({VIDEO: packages["video-v1"]}, miner, store, net, console=console)
    assert result.waited_s == pytest.approx(95 * net.clock.block_time)
    assert sum(net.clock.slept) == pytest.approx(95)
    assert all(s <= 1.0 for s in net.clock.slept)
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert "commitment rate limited: 95 block(s) left" in out and "retrying in 95 s" in out
    assert "94s left" in out and "50s left" in out and "0s left" in out  # the live countdown
    commitment, entries = on_chain(net, miner.identity.hotkey)
    assert set(entries) == {IMAGE, VIDEO} and commitment.block == 100


def test_rate_limit_longer_than_max_wait_gives_up_with_a_reason(net, miner, packages, tmp_path):
    store = SpyStore(tmp_path / "models")
    run({IMAGE: packages["image-v1"]}, miner, store, net)
    net.at(5)
    with pytest.raises(PushError) as exc:
        run({VIDEO: packages["video-v1"]}, miner, store, net, max_wait_s=60)
    assert exc.value.stage == "rate_limit" and exc.value.exit_code == EXIT_CODES["rate_limit"] == 6
    assert "95 more block(s)" in str(exc.value) and "run the same push again later" in str(exc.value)
    assert net.clock.slept == []
    assert store.puts == 2  # uploaded, not committed
    assert set(on_chain(net, miner.identity.hotkey)[1]) == {IMAGE}


# --------------------------------------------------------------------------------------------
# failures stop before the next step
# --------------------------------------------------------------------------------------------
def test_validation_failure_uploads_and_commits_nothing(net, miner, packages, tmp_path):
    store = SpyStore(tmp_path / "models")
    validate = FakeValidate()
    with pytest.raises(PushError) as exc:
        push(
            {IMAGE: packages["bad-image"], VIDEO: packages["video-v1"]},
            chain=miner,
            store=store,
            validate=validate,
            console=quiet(),
            sleep=net.clock.sleep,
        )
    assert exc.value.exit_code == 3 and "missing 'modality'" in str(exc.value)
    assert len(validate.calls) == 2  # every package is validated, then nothing happens
    assert store.puts == 0 and not (tmp_path / "models").exists()
    assert miner.identity.hotkey not in net.admin.commitments()


def test_declared_modality_must_match_the_flag(net, miner, packages, tmp_path):
    store = SpyStore(tmp_path / "models")
    with pytest.raises(PushError, match="is a video detector .* use --video-model"):
        run({IMAGE: packages["video-as-image"]}, miner, store, net)
    assert store.puts == 0


def test_a_crashing_validator_is_a_validation_failure(net, miner, packages, tmp_path):
    def boom(path, modality=None):
        raise FileNotFoundError(path)

    with pytest.raises(PushError) as exc:
        push(
            {IMAGE: packages["image-v1"]},
            chain=miner,
            store=FileStore(tmp_path),
            validate=boom,
            console=quiet(),
        )
    assert exc.value.stage == "validate"


def test_store_failure_commits_nothing(net, miner, packages, tmp_path):
    store = SpyStore(tmp_path / "models", fail_on=2)
    with pytest.raises(PushError) as exc:
        run({IMAGE: packages["image-v1"], VIDEO: packages["video-v1"]}, miner, store, net)
    assert (
        exc.value.exit_code == 4
        and "disk quota" in str(exc.value)
        and "uploaded before the failure: image" in str(exc.value)
    )
    assert miner.identity.hotkey not in net.admin.commitments()


def test_a_package_changed_after_validation_is_not_committed(net, miner, packages, tmp_path):
    seen: list[FakePackage] = []

    def validate(path, modality=None):
        report = FakeValidate()(path)
        report.package.changed = True
        seen.append(report.package)
        return report

    with pytest.raises(PushError, match="changed on disk") as exc:
        push(
            {IMAGE: packages["image-v1"]},
            chain=miner,
            store=FileStore(tmp_path / "m"),
            validate=validate,
            console=quiet(),
        )
    assert exc.value.stage == "upload"
    assert miner.identity.hotkey not in net.admin.commitments()
    assert [p.cleaned for p in seen] == [1]  # validated packages are cleaned up, failure or not


def test_unregistered_hotkey_uploads_nothing(net, packages, tmp_path):
    stranger = net.client(make_identity("stranger"))
    store = SpyStore(tmp_path / "models")
    with pytest.raises(PushError, match="not registered") as exc:
        run({IMAGE: packages["image-v1"]}, stranger, store, net)
    assert exc.value.exit_code == 5 and store.puts == 0


class LossyChain:
    """A chain whose commitment never lands (or lands altered): read-back must catch it."""

    def __init__(self, inner: DevChain, alter: bytes | None = None) -> None:
        self.inner, self.alter = inner, alter

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def set_commitment(self, data, netuid=None):
        if self.alter is not None:
            self.inner.set_commitment(self.alter, netuid)


def test_read_back_mismatch_is_detected(net, miner, packages, tmp_path):
    with pytest.raises(PushError) as exc:
        run({IMAGE: packages["image-v1"]}, LossyChain(miner), FileStore(tmp_path / "m"), net)
    assert exc.value.exit_code == 7 and "chain holds no commitment" in str(exc.value)
    assert net.clock.slept == [1.0, 1.0]  # re-read one block apart before giving up


def test_read_back_of_different_entries_is_detected(net, miner, packages, tmp_path):
    store = FileStore(tmp_path / "m")
    hk = miner.identity.hotkey
    sha = hashlib.sha256(b"something else").hexdigest()
    wrong = encode_commitment({IMAGE: ModelEntry.create(IMAGE, store.uri, sha, sha, hk)}, hk)
    with pytest.raises(PushError, match="does not match") as exc:
        run({IMAGE: packages["image-v1"]}, LossyChain(miner, alter=wrong), store, net)
    assert exc.value.stage == "verify"


def test_too_large_commitment_is_a_chain_error(net, miner, packages, tmp_path):
    deep = tmp_path / ("d" * 100) / ("e" * 100) / ("f" * 100)
    with pytest.raises(PushError, match="too large.*shorter store path") as exc:
        run(
            {IMAGE: packages["image-v1"], VIDEO: packages["video-v1"], AUDIO: packages["audio-v1"]},
            miner,
            FileStore(deep),
            net,
        )
    assert exc.value.exit_code == 5


def test_nothing_to_push():
    with pytest.raises(PushError) as exc:
        push({}, chain=object(), store=object(), validate=FakeValidate(), console=quiet())
    assert exc.value.exit_code == 2


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
@pytest.fixture
def wallet_env(tmp_path):
    """A wallet on disk and a registered hotkey on the dev chain ``<cache>/devchain/default.db``."""
    from gas.chain.wallets import create_wallet, load_identity

    wallets, cache = tmp_path / "wallets", tmp_path / "cache"
    create_wallet("miner", "hk1", path=wallets)
    ident = load_identity("miner", "hk1", path=wallets)
    admin = DevChain.init(DevChain.default_path(cache, "default"), block_time=0.05)
    admin.fund(ident.coldkey, 10)
    with DevChain(admin.path, identity=ident) as c:
        c.register()
    yield {"wallets": wallets, "cache": cache, "ident": ident, "admin": admin}
    admin.close()


def cli(wallet_env, *extra: str) -> list[str]:
    return [
        "--network",
        "dev",
        "--cache-dir",
        str(wallet_env["cache"]),
        "--wallet-path",
        str(wallet_env["wallets"]),
        "--wallet-name",
        "miner",
        "--wallet-hotkey",
        "hk1",
        *extra,
    ]


def test_main_pushes_with_settings_and_wallet(wallet_env, packages):
    buf = io.StringIO()
    code = main(
        cli(wallet_env, "--image-model", str(packages["image-v1"])),
        validate=FakeValidate(),
        console=Console(file=buf, width=200),
    )
    assert code == 0, buf.getvalue()
    hk = wallet_env["ident"].hotkey
    entries = decode_commitment(wallet_env["admin"].commitments()[hk].data, hk)
    assert set(entries) == {IMAGE}
    assert (
        entries[IMAGE].store_uri == f"file://{wallet_env['cache'] / 'models'}"
    )  # the settings' default store
    assert (wallet_env["cache"] / "models" / "sha256").is_dir()
    assert "committed" in buf.getvalue()


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        ((), 2, "give at least one of"),
        (("--image-model", "X", "--store", "s3://bucket"), 2, "must start with file:// or hf://"),
        (("--image-model", "X", "--wallet-hotkey", "nope"), 2, "hotkey file"),
        (("--image-model", "X", "--network", "nonsense"), 2, "GAS_NETWORK"),
    ],
)
def test_main_usage_errors(wallet_env, extra, code, message):
    buf = io.StringIO()
    args = cli(wallet_env)
    args += list(extra)
    assert main(args, validate=FakeValidate(), console=Console(file=buf, width=300)) == code
    assert message in buf.getvalue()


def test_main_exit_code_of_a_failed_validation(wallet_env, packages):
    buf = io.StringIO()
    code = main(
        cli(wallet_env, "--image-model", str(packages["bad-image"])),
        validate=FakeValidate(),
        console=Console(file=buf, width=200),
    )
    assert code == 3 and "nothing was uploaded" in buf.getvalue()


def test_script_runs_by_path():
    out = subprocess.run(
        [sys.executable, str(REPO / "neurons/discriminator/push_model.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert out.returncode == 0 and "--image-model" in out.stdout and "--max-wait" in out.stdout
    assert push_model.__file__  # the module imports too
