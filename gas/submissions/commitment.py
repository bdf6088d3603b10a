"""The chain commitment of a discriminative miner: every modality's model in one record.

A hotkey has one commitment slot per subnet (at most 3 Raw fields × 128 bytes = 384 bytes), so one
record holds the image, video and audio entries together; pushing one modality re-commits the
others unchanged (the reference overwrote them). Format (UTF-8 text, ``|``-separated fields)::

    gas1|s=<store uri>[|s=<store uri 2>...]|i=<sha>.<bind>[.<ref>]|v=...|a=...

* ``gas1`` — format and version;
* ``s=`` — the store URIs, in order; an entry names store 0 by its bare key (``i=``) and store 1
  or 2 with a digit suffix (``v1=``), so a store shared by all entries is written once;
* keys ``i``/``v``/``a`` — image/video/audio, written in that order;
* ``<sha>`` — the package's sha256, 32 bytes as unpadded base64url (43 chars);
* ``<bind>`` — the binding, the first 16 bytes of ``sha256(package_sha256_hex + hotkey)`` as
  base64url (22 chars); the hex form (32 chars) is :attr:`ModelEntry.binding`;
* ``<ref>`` — the store ref (refs are lowercase hex) as base64url of its bytes, left out when it
  equals the package sha256 (the file store's case).

See docs/model-stores-and-commitments.md for the byte budget.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gas.chain.base import Commitment, CommitmentTooLarge
from gas.types import Modality

__all__ = [
    "BINDING_HEX_CHARS",
    "COMMITMENT_LIMIT",
    "FORMAT_VERSION",
    "ModelEntry",
    "Submission",
    "decode_commitment",
    "encode_commitment",
    "first_seen_blocks",
    "make_binding",
    "resolve_submissions",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = "gas1"
#: 3 Raw fields × 128 bytes: what the commitments pallet stores per hotkey (gas.chain.devchain).
COMMITMENT_LIMIT = 384
BINDING_BYTES = 16
BINDING_HEX_CHARS = 2 * BINDING_BYTES
MAX_REF_BYTES = 64

_KEYS: dict[Modality, str] = {Modality.IMAGE: "i", Modality.VIDEO: "v", Modality.AUDIO: "a"}
_BY_KEY = {k: m for m, k in _KEYS.items()}
_ORDER = tuple(_KEYS)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX_BIND = re.compile(rf"^[0-9a-f]{{{BINDING_HEX_CHARS}}}$")
_HEX_REF = re.compile(rf"^(?:[0-9a-f]{{2}}){{1,{MAX_REF_BYTES}}}$")
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
_ENTRY_KEY = re.compile(r"^([iva])([12]?)$")


def make_binding(package_sha256: str, hotkey: str) -> str:
    """``sha256(package_sha256_hex + hotkey)``, first 16 bytes, as 32 hex characters."""
    return hashlib.sha256((package_sha256 + hotkey).encode("utf-8")).hexdigest()[:BINDING_HEX_CHARS]


@dataclass(frozen=True)
class ModelEntry:
    """One modality's committed model: where it is, which bytes, and the hotkey binding."""

    modality: Modality
    store_uri: str
    ref: str
    package_sha256: str
    binding: str

    @classmethod
    def create(
        cls, modality: Modality | str, store_uri: str, ref: str, package_sha256: str, hotkey: str
    ) -> ModelEntry:
        return cls(Modality(modality), store_uri, ref, package_sha256, make_binding(package_sha256, hotkey))

    def bound_to(self, hotkey: str) -> bool:
        return self.binding == make_binding(self.package_sha256, hotkey)


@dataclass(frozen=True)
class Submission:
    """An entry that survived decoding and de-duplication; ``block`` is when it counts from."""

    hotkey: str
    block: int
    entry: ModelEntry


# --------------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str, nbytes: int | None = None) -> bytes | None:
    """Strict, canonical unpadded base64url → bytes (None when it is anything else)."""
    if not text or not _B64.match(text) or len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if _b64(raw) != text or (nbytes is not None and len(raw) != nbytes):
        return None
    return raw


def _check_store_uri(uri: str) -> None:
    if not isinstance(uri, str) or not uri or "://" not in uri:
        raise ValueError(f"store URI {uri!r} is not a URI")
    if any(c == "|" or c.isspace() or not c.isprintable() for c in uri):
        raise ValueError(f"store URI {uri!r} must not contain '|', spaces or control characters")


def encode_commitment(entries: Mapping[Modality | str, ModelEntry], hotkey: str) -> bytes:
    """The commitment bytes for all of ``hotkey``'s entries.

    Raises ValueError for an inconsistent entry (wrong key, bad hash or ref, binding of another
    hotkey) and :class:`CommitmentTooLarge` when the result exceeds 384 bytes.
    """
    by_mod: dict[Modality, ModelEntry] = {}
    for key, entry in entries.items():
        mod = Modality(key)
        if entry.modality != mod:
            raise ValueError(f"entry for {mod.value} says modality {entry.modality.value}")
        if not isinstance(entry.package_sha256, str) or not _HEX64.match(entry.package_sha256):
            raise ValueError(f"{mod.value}: package sha256 must be 64 lowercase hex characters")
        if (
            not isinstance(entry.binding, str)
            or not _HEX_BIND.match(entry.binding)
            or not entry.bound_to(hotkey)
        ):
            raise ValueError(
                f"{mod.value}: binding does not match package {entry.package_sha256[:12]} and {hotkey}"
            )
        if entry.ref != entry.package_sha256 and (
            not isinstance(entry.ref, str) or not _HEX_REF.match(entry.ref)
        ):
            raise ValueError(
                f"{mod.value}: store ref {entry.ref!r} is not lowercase hex (≤{MAX_REF_BYTES} bytes)"
            )
        _check_store_uri(entry.store_uri)
        by_mod[mod] = entry

    stores: list[str] = []
    parts = [FORMAT_VERSION]
    body: list[str] = []
    for mod in _ORDER:
        entry = by_mod.get(mod)
        if entry is None:
            continue
        if entry.store_uri not in stores:
            stores.append(entry.store_uri)
        idx = stores.index(entry.store_uri)
        value = f"{_b64(bytes.fromhex(entry.package_sha256))}.{_b64(bytes.fromhex(entry.binding))}"
        if entry.ref != entry.package_sha256:
            value += f".{_b64(bytes.fromhex(entry.ref))}"
        body.append(f"{_KEYS[mod]}{idx or ''}={value}")
    parts += [f"s={s}" for s in stores] + body
    data = "|".join(parts).encode("utf-8")
    if len(data) > COMMITMENT_LIMIT:
        store_bytes = sum(len(f"|s={s}".encode()) for s in stores)
        hint = (
            f"the store URI(s) {', '.join(stores)} take {store_bytes} bytes: use a shorter store path or "
            f"repo id (about {max(0, store_bytes - (len(data) - COMMITMENT_LIMIT))} bytes fit)"
        )
        if len(stores) > 1:
            hint += ", or push every modality to the same store"
        raise CommitmentTooLarge(len(data), COMMITMENT_LIMIT, hint)
    return data


# --------------------------------------------------------------------------------------------
# decode (never raises)
# --------------------------------------------------------------------------------------------
def decode_commitment(
    data: bytes | str | None, hotkey: str, *, quiet: bool = False
) -> dict[Modality, ModelEntry]:
    """The entries of a commitment that are well-formed and bound to ``hotkey``.

    Never raises. Anything malformed (not UTF-8, another format or version, a bad or repeated
    field) yields {}; an entry with a bad hash, ref, store index or a binding of another hotkey is
    dropped. Problems are logged as ONE warning naming the hotkey (none when ``quiet``).
    """
    problems: list[str] = []
    try:
        entries = _decode(data, hotkey, problems)
    except Exception as e:  # belt and braces: decoding chain data must never raise
        entries, problems = {}, [f"unexpected {type(e).__name__}"]
    if problems and not quiet:
        log.warning(
            "ignoring part of the commitment of %s: %s (kept %d entr%s)",
            hotkey,
            "; ".join(problems),
            len(entries),
            "y" if len(entries) == 1 else "ies",
        )
    return entries


def _decode(data: bytes | str | None, hotkey: str, problems: list[str]) -> dict[Modality, ModelEntry]:
    if data is None:
        return {}
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            problems.append("not UTF-8")
            return {}
    if len(text.encode("utf-8")) > COMMITMENT_LIMIT:
        problems.append(f"longer than {COMMITMENT_LIMIT} bytes")
        return {}
    fields = text.split("|")
    if fields[0] != FORMAT_VERSION:
        shown = fields[0][:16]
        problems.append(f"not a {FORMAT_VERSION} commitment (starts with {shown!r})")
        return {}
    stores: list[str] = []
    raw_entries: dict[Modality, tuple[int, str]] = {}
    for field in fields[1:]:
        key, sep, value = field.partition("=")
        if not sep:
            problems.append(f"field {field[:16]!r} has no '='")
            return {}
        if key == "s":
            try:
                _check_store_uri(value)
            except ValueError:
                problems.append(f"bad store URI {value[:40]!r}")
                return {}
            if value in stores or len(stores) >= len(_ORDER):
                problems.append("repeated or too many store URIs")
                return {}
            stores.append(value)
            continue
        m = _ENTRY_KEY.match(key)
        if m is None:
            problems.append(f"unknown field {key[:8]!r}")
            return {}
        mod = _BY_KEY[m.group(1)]
        if mod in raw_entries:
            problems.append(f"{mod.value} given twice")
            return {}
        raw_entries[mod] = (int(m.group(2) or 0), value)

    out: dict[Modality, ModelEntry] = {}
    for mod in _ORDER:
        if mod not in raw_entries:
            continue
        idx, value = raw_entries[mod]
        if idx >= len(stores):
            problems.append(f"{mod.value}: no store #{idx}")
            continue
        parts = value.split(".")
        if len(parts) not in (2, 3):
            problems.append(f"{mod.value}: expected sha.binding[.ref]")
            continue
        sha = _unb64(parts[0], 32)
        bind = _unb64(parts[1], BINDING_BYTES)
        ref = _unb64(parts[2]) if len(parts) == 3 else sha
        if sha is None or bind is None or ref is None or len(ref) > MAX_REF_BYTES:
            problems.append(f"{mod.value}: bad base64url hash, binding or ref")
            continue
        entry = ModelEntry(mod, stores[idx], ref.hex(), sha.hex(), bind.hex())
        if not entry.bound_to(hotkey):
            problems.append(f"{mod.value}: binding of package {entry.package_sha256[:12]} is not {hotkey}'s")
            continue
        out[mod] = entry
    return out


# --------------------------------------------------------------------------------------------
# resolve: decode everyone, earliest commitment of identical bytes wins
# --------------------------------------------------------------------------------------------
def resolve_submissions(
    commitments: Mapping[str, Commitment],
    *,
    first_seen: Mapping[tuple[str, str], int] | None = None,
) -> dict[Modality, list[Submission]]:
    """Every hotkey's decoded entries, per modality, with copies removed.

    When several hotkeys commit the same ``package_sha256`` for a modality, only the one with the
    earliest block is kept (a tie goes to the lexicographically lowest hotkey, so every validator
    picks the same one); the others are dropped and logged. An entry's block is its commitment's
    block, or ``first_seen[(hotkey, package_sha256)]`` when that is earlier: the chain keeps only
    a hotkey's latest commitment, and re-committing (to add a modality) must not make an original
    look younger than its copies. Lists are ordered by (block, hotkey); every modality is a key.
    """
    seen = first_seen or {}
    candidates: dict[Modality, dict[str, list[Submission]]] = {m: {} for m in _ORDER}
    for hotkey in sorted(commitments):
        commitment = commitments[hotkey]
        for mod, entry in decode_commitment(commitment.data, hotkey).items():
            block = commitment.block
            earlier = seen.get((hotkey, entry.package_sha256))
            if earlier is not None and earlier < block:
                block = earlier
            candidates[mod].setdefault(entry.package_sha256, []).append(Submission(hotkey, block, entry))
    out: dict[Modality, list[Submission]] = {}
    for mod in _ORDER:
        kept: list[Submission] = []
        for sha, subs in candidates[mod].items():
            subs.sort(key=lambda s: (s.block, s.hotkey))
            kept.append(subs[0])
            if len(subs) > 1:
                log.info(
                    "%s: package %s committed by %d hotkeys; keeping %s (block %d), dropping copies by %s",
                    mod.value,
                    sha[:12],
                    len(subs),
                    subs[0].hotkey,
                    subs[0].block,
                    ", ".join(f"{s.hotkey} (block {s.block})" for s in subs[1:]),
                )
        kept.sort(key=lambda s: (s.block, s.hotkey))
        out[mod] = kept
    return out


def first_seen_blocks(history: Iterable[object]) -> dict[tuple[str, str], int]:
    """``{(hotkey, package_sha256): first block}`` from commitment records (``.block``, ``.hotkey``,
    ``.data``, e.g. the dev chain's ``commitment_history()`` or a validator's own log)."""
    out: dict[tuple[str, str], int] = {}
    for rec in history:
        block, hotkey, data = rec.block, rec.hotkey, rec.data  # type: ignore[attr-defined]
        for entry in decode_commitment(data, hotkey, quiet=True).values():
            key = (hotkey, entry.package_sha256)
            if key not in out or block < out[key]:
                out[key] = block
    return out
