"""Push detector packages: validate, upload to the model store, commit every modality on chain.

``python neurons/discriminator/push_model.py --image-model detector.zip`` (or
``python -m neurons.discriminator.push_model``). Steps, each stopping the push on failure:

1. validate every given package locally (and check its declared modality) — nothing is uploaded
   unless all pass;
2. check the hotkey is registered, then upload each package to the store (content-addressed, so
   re-uploading is harmless);
3. read the hotkey's current commitment, keep the modalities it already holds, and commit all of
   them in ONE ``set_commitment`` (waiting out the chain's commitment rate limit with a visible
   countdown, up to ``--max-wait`` seconds);
4. read the commitment back and check it decodes to exactly the intended entries.

Exit codes: see :data:`EXIT_CODES` (0 success).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from gas.chain.base import Chain, ChainError, CommitmentTooLarge, RateLimited
from gas.submissions.commitment import ModelEntry, decode_commitment, encode_commitment
from gas.submissions.stores import ModelStore, StoreError
from gas.types import Modality

__all__ = ["DEFAULT_MAX_WAIT_S", "EXIT_CODES", "PushError", "PushResult", "main", "push"]

#: A little more than the default commitment rate limit (100 blocks × 12 s).
DEFAULT_MAX_WAIT_S = 1500.0
READBACK_ATTEMPTS = 3

EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "usage": 2,  # bad flags, settings, wallet or store URI
    "validate": 3,  # a package failed validation: nothing uploaded
    "upload": 4,  # the store refused or failed: nothing committed
    "chain": 5,  # not registered, commitment too large, chain error
    "rate_limit": 6,  # the rate-limit wait would exceed --max-wait: uploaded, not committed
    "verify": 7,  # committed, but the read-back does not match
}

_ORDER = (Modality.IMAGE, Modality.VIDEO, Modality.AUDIO)


class PushError(RuntimeError):
    """A push step failed. ``stage`` names it; ``exit_code`` is what the CLI exits with."""

    def __init__(self, message: str, *, stage: str) -> None:
        self.stage = stage
        self.exit_code = EXIT_CODES[stage]
        super().__init__(message)


@dataclass
class PushResult:
    hotkey: str
    pushed: dict[Modality, ModelEntry]  # the entries given to this push
    committed: dict[Modality, ModelEntry]  # everything the hotkey's commitment holds now
    commitment: bytes
    block: int  # block of the commitment on chain
    unchanged: bool = False  # the chain already held exactly this commitment: nothing was sent
    waited_s: float = 0.0  # time spent waiting for the rate limit
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# push
# --------------------------------------------------------------------------------------------
def push(
    models: Mapping[Modality | str, Path | str],
    *,
    chain: Chain,
    store: ModelStore,
    validate: Callable[[Path, Modality], Any],
    console: Console | None = None,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Validate, upload and commit ``models`` (modality → package path) as ``chain.identity``.

    ``validate(path)`` returns a report with ``.ok`` and ``.package`` (``.sha256``,
    ``.archive_bytes()``, ``.config.modality``). Raises :class:`PushError` on any failure.
    """
    loaded: list[Any] = []
    try:
        return _push(
            models,
            loaded,
            chain=chain,
            store=store,
            validate=validate,
            console=console or Console(),
            max_wait_s=max_wait_s,
            sleep=sleep,
        )
    finally:
        for package in loaded:  # validation may have extracted into a temp dir
            cleanup = getattr(package, "cleanup", None)
            if callable(cleanup):
                try:
                    cleanup()
                except OSError:
                    pass


def _push(
    models: Mapping[Modality | str, Path | str],
    loaded: list[Any],
    *,
    chain: Chain,
    store: ModelStore,
    validate: Callable[[Path, Modality], Any],
    console: Console,
    max_wait_s: float,
    sleep: Callable[[float], None],
) -> PushResult:
    if not models:
        raise PushError(
            "nothing to push: give --image-model, --video-model and/or --audio-model", stage="usage"
        )
    if chain.identity is None:
        raise PushError("pushing needs a wallet: open the chain with the miner's hotkey", stage="usage")
    hotkey = chain.identity.hotkey
    try:
        wanted = {Modality(m): Path(p) for m, p in models.items()}
    except ValueError as e:
        raise PushError(str(e), stage="usage") from None
    wanted = {m: wanted[m] for m in _ORDER if m in wanted}

    # 1. validate everything before anything leaves this machine
    packages: dict[Modality, Any] = {}
    failures: list[str] = []
    for mod, path in wanted.items():
        _say(console, f"validating {mod.value} package {path}")
        try:
            report = validate(path, mod)
        except Exception as e:  # a validator crash is a failed validation
            failures.append(f"{mod.value}: {path}: {type(e).__name__}: {e}")
            continue
        if not getattr(report, "ok", False):
            failures.append(
                f"{mod.value}: {path} failed validation:" + "".join(f"\n    {p}" for p in _problems(report))
            )
            continue
        package = report.package
        loaded.append(package)
        try:
            declared = Modality(getattr(package.config.modality, "value", package.config.modality))
        except (AttributeError, ValueError):
            failures.append(f"{mod.value}: {path}: model_config.yaml declares no valid modality")
            continue
        if declared != mod:
            failures.append(
                f"{mod.value}: {path} is a {declared.value} detector (model_config.yaml) but was given as "
                f"--{mod.value}-model; use --{declared.value}-model"
            )
            continue
        packages[mod] = package
    if failures:
        raise PushError(
            "validation failed, nothing was uploaded or committed:\n  " + "\n  ".join(failures),
            stage="validate",
        )

    # registered? (checked before uploading so a typo'd hotkey costs nothing)
    try:
        registered = chain.metagraph().by_hotkey(hotkey) is not None
    except ChainError as e:
        raise PushError(f"cannot read the metagraph: {e}", stage="chain") from None
    if not registered:
        raise PushError(
            f"hotkey {hotkey} is not registered on subnet {chain.netuid} ({chain.network}): register it first; "
            "nothing was uploaded",
            stage="chain",
        )

    # 2. upload
    new_entries: dict[Modality, ModelEntry] = {}
    for mod, package in packages.items():
        try:
            data = package.archive_bytes()
            obj = store.put(data, sha256=package.sha256)
        except (StoreError, OSError, ValueError) as e:  # ValueError: the package changed since validation
            done = ", ".join(m.value for m in new_entries) or "none"
            raise PushError(
                f"upload of the {mod.value} package to {store.uri} failed: {e} "
                f"(uploaded before the failure: {done}); nothing was committed",
                stage="upload",
            ) from None
        new_entries[mod] = ModelEntry.create(mod, store.uri, obj.ref, obj.sha256, hotkey)
        _say(
            console,
            f"uploaded {mod.value} package {obj.sha256[:16]}… ({obj.size} bytes) to {store.uri} ref {obj.ref}",
        )

    # 3. merge with what the hotkey already committed, commit once (waiting out the rate limit)
    notes: list[str] = []
    waited = 0.0
    unchanged = False
    while True:
        current = _read_commitment(chain, hotkey)
        existing = decode_commitment(current.data, hotkey) if current is not None else {}
        if current is not None and not existing and current.data:
            notes.append("the hotkey's previous commitment was not a readable GAS commitment; it is replaced")
        merged = {m: e for m in _ORDER if (e := new_entries.get(m) or existing.get(m)) is not None}
        try:
            payload = encode_commitment(merged, hotkey)
        except CommitmentTooLarge as e:
            raise PushError(
                f"{e}; the packages are uploaded but nothing was committed", stage="chain"
            ) from None
        if current is not None and current.data == payload:
            unchanged = True
            _say(console, "the chain already holds this commitment: nothing to send")
            break
        kept = [m.value for m in merged if m not in new_entries]
        _say(
            console,
            f"committing {', '.join(m.value for m in new_entries)}"
            + (f" (keeping {', '.join(kept)})" if kept else "")
            + f" as {hotkey}: {len(payload)} bytes",
        )
        try:
            chain.set_commitment(payload)
            break
        except RateLimited as e:
            wait_s = max(int(e.blocks_left), 1) * float(chain.block_time())
            if waited + wait_s > max_wait_s:
                raise PushError(
                    f"the commitment rate limit ({e.limit} blocks) needs {e.blocks_left} more block(s), about "
                    f"{wait_s:.0f} s, and the wait would pass --max-wait ({max_wait_s:.0f} s); the packages are "
                    "uploaded: run the same push again later to commit them",
                    stage="rate_limit",
                ) from None
            _countdown(console, wait_s, sleep, f"commitment rate limited: {e.blocks_left} block(s) left")
            waited += wait_s
        except ChainError as e:
            raise PushError(f"set_commitment failed: {e}; nothing was committed", stage="chain") from None

    # 4. read back
    block_time = float(chain.block_time())
    got_entries: dict[Modality, ModelEntry] = {}
    got = None
    for attempt in range(READBACK_ATTEMPTS):
        got = _read_commitment(chain, hotkey)
        got_entries = decode_commitment(got.data, hotkey) if got is not None else {}
        if got is not None and got_entries == merged:
            break
        if attempt + 1 < READBACK_ATTEMPTS:
            sleep(block_time)
    else:
        raise PushError(
            "the commitment read back from the chain does not match what was committed: expected "
            f"{_summary(merged)}, chain holds {_summary(got_entries) if got is not None else 'no commitment'}",
            stage="verify",
        )
    assert got is not None
    result = PushResult(
        hotkey=hotkey,
        pushed=new_entries,
        committed=merged,
        commitment=payload,
        block=got.block,
        unchanged=unchanged,
        waited_s=waited,
        notes=notes,
    )
    for note in notes:
        _say(console, f"note: {note}")
    _say(console, f"committed {_summary(merged)} at block {got.block}", "green")
    return result


def _say(console: Console, text: str, style: str | None = None) -> None:
    """Print plain text (paths and URIs may hold '[' ... ']': never markup)."""
    console.print(text, style=style, markup=False, highlight=False)


def _read_commitment(chain: Chain, hotkey: str):
    try:
        return chain.commitments().get(hotkey)
    except ChainError as e:
        raise PushError(f"cannot read commitments: {e}", stage="chain") from None


def _summary(entries: Mapping[Modality, ModelEntry]) -> str:
    if not entries:
        return "nothing"
    return ", ".join(f"{m.value} {e.package_sha256[:12]}" for m, e in entries.items())


def _countdown(console: Console, seconds: float, sleep: Callable[[float], None], reason: str) -> None:
    """Sleep ``seconds`` in 1 s steps with a visible progress line."""
    _say(console, f"{reason}: retrying in {seconds:.0f} s", "yellow")
    with Progress(
        TextColumn("[yellow]rate limit[/]"),
        BarColumn(),
        TextColumn("{task.fields[left]}"),
        console=console,
        auto_refresh=False,
        transient=False,
    ) as progress:
        task = progress.add_task("wait", total=seconds, left=f"{seconds:.0f}s left")
        remaining = float(seconds)
        while remaining > 0:
            step = min(1.0, remaining)
            sleep(step)
            remaining -= step
            progress.update(task, advance=step, left=f"{max(remaining, 0):.0f}s left", refresh=True)


def _problems(report: Any) -> list[str]:
    """Readable failure lines from a validation report, whatever its exact shape."""
    for attr in ("errors", "problems", "failures"):
        items = getattr(report, attr, None)
        if items and not callable(items):
            return [str(x) for x in items]
    checks = getattr(report, "checks", None)
    if checks:
        lines = []
        for c in checks:
            if isinstance(c, Mapping):
                ok, name, msg = c.get("ok", True), c.get("name", ""), c.get("message", "")
            else:
                ok, name, msg = getattr(c, "ok", True), getattr(c, "name", ""), getattr(c, "message", "")
            if not ok:
                lines.append(f"{name}: {msg}" if name else str(msg))
        if lines:
            return lines
    to_dict = getattr(report, "to_dict", None)
    if callable(to_dict):
        try:
            return [str(to_dict())]
        except Exception:
            pass
    return [str(report)]


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="push_model",
        description="Validate detector packages, upload them to the model store and commit them on chain.",
    )
    for mod in _ORDER:
        p.add_argument(f"--{mod.value}-model", type=Path, metavar="ZIP", help=f"{mod.value} detector package")
    p.add_argument("--wallet-name", help="wallet (coldkey) name [env GAS_WALLET_NAME]")
    p.add_argument("--wallet-hotkey", help="hotkey name [env GAS_WALLET_HOTKEY]")
    p.add_argument("--wallet-path", type=Path, help="wallet directory [env GAS_WALLET_PATH]")
    p.add_argument("--network", help="dev, local, test, finney or ws(s):// URL [env GAS_NETWORK]")
    p.add_argument("--netuid", type=int, help="subnet id [env GAS_NETUID]")
    p.add_argument("--store", help="model store: file://DIR or hf://org/repo[@rev] [env GAS_MODEL_STORE]")
    p.add_argument("--devchain", help="dev chain name [env GAS_DEVCHAIN]")
    p.add_argument("--cache-dir", type=Path, help="state directory [env GAS_CACHE_DIR]")
    p.add_argument(
        "--max-wait",
        type=float,
        default=DEFAULT_MAX_WAIT_S,
        metavar="S",
        help=f"longest wait for the commitment rate limit, in seconds (default {DEFAULT_MAX_WAIT_S:.0f})",
    )
    return p


def _default_validate() -> Callable[[Path, Modality], Any]:
    """Every check of ``gascli d validate``, including the sandboxed smoke run."""
    from gas.submissions.smoke import smoke_callback
    from gas.submissions.validate import validate_package

    smoke = smoke_callback()
    return lambda path, modality: validate_package(path, modality=modality, smoke=smoke)


def main(
    argv: list[str] | None = None,
    *,
    validate: Callable[[Path, Modality], Any] | None = None,
    console: Console | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    args = build_parser().parse_args(argv)
    out = console or Console()
    err = console or Console(stderr=True)

    def fail(message: str, stage: str) -> int:
        _say(err, f"error: {message}", "red")
        return EXIT_CODES[stage]

    models = {
        m: getattr(args, f"{m.value}_model") for m in _ORDER if getattr(args, f"{m.value}_model") is not None
    }
    if not models:
        return fail("give at least one of --image-model, --video-model, --audio-model", "usage")

    from gas.chain import open_from_settings
    from gas.chain.wallets import WalletError, load_identity
    from gas.config import DiscriminatorSettings, SettingsError, load_settings
    from gas.submissions.stores import open_store

    try:
        settings = load_settings(
            DiscriminatorSettings,
            overrides={
                "network": args.network,
                "netuid": args.netuid,
                "devchain": args.devchain,
                "wallet_name": args.wallet_name,
                "wallet_hotkey": args.wallet_hotkey,
                "wallet_path": args.wallet_path,
                "model_store": args.store,
                "cache_dir": args.cache_dir,
            },
        )
    except SettingsError as e:
        return fail(str(e), "usage")
    try:
        store = open_store(settings.model_store, cache_dir=settings.cache_dir)
    except StoreError as e:
        return fail(str(e), "usage")
    try:
        identity = load_identity(settings.wallet_name, settings.wallet_hotkey, path=settings.wallet_path)
    except WalletError as e:
        return fail(str(e), "usage")
    if validate is None:
        try:
            validate = _default_validate()
        except ImportError as e:
            return fail(f"package validation is unavailable ({e})", "usage")
    try:
        chain = open_from_settings(settings, identity=identity)
    except ChainError as e:
        return fail(str(e), "chain")
    try:
        _say(
            out, f"pushing as {identity.hotkey} on {settings.network} subnet {settings.netuid} to {store.uri}"
        )
        push(
            models,
            chain=chain,
            store=store,
            validate=validate,
            console=out,
            max_wait_s=args.max_wait,
            sleep=sleep,
        )
    except PushError as e:
        return fail(str(e), e.stage)
    finally:
        chain.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
