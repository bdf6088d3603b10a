"""The one-record-per-hotkey commitment: format, byte budget, defensive decoding, earliest wins."""

from __future__ import annotations

import hashlib
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gas.chain.base import Commitment, CommitmentTooLarge
from gas.submissions.commitment import (
    COMMITMENT_LIMIT,
    ModelEntry,
    decode_commitment,
    encode_commitment,
    first_seen_blocks,
    make_binding,
    resolve_submissions,
)
from gas.types import Modality

HK_A = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
HK_B = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
HK_C = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y"
FILE_URI = "file:///root/.cache/gas/models"
HF_URI = "hf://gas-miner/detectors"
IMAGE, VIDEO, AUDIO = Modality.IMAGE, Modality.VIDEO, Modality.AUDIO


def sha(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def commit_sha(tag: str) -> str:
    return hashlib.sha1(tag.encode()).hexdigest()


def file_entry(mod: Modality, tag: str, hotkey: str = HK_A, uri: str = FILE_URI) -> ModelEntry:
    return ModelEntry.create(mod, uri, sha(tag), sha(tag), hotkey)


def hf_entry(mod: Modality, tag: str, hotkey: str = HK_A, uri: str = HF_URI) -> ModelEntry:
    return ModelEntry.create(mod, uri, commit_sha(tag), sha(tag), hotkey)


# --------------------------------------------------------------------------------------------
# format and budget
# --------------------------------------------------------------------------------------------
def test_binding_is_a_truncated_hash_of_package_and_hotkey():
    assert make_binding(sha("x"), HK_A) == hashlib.sha256((sha("x") + HK_A).encode()).hexdigest()[:32]
    assert make_binding(sha("x"), HK_A) != make_binding(sha("x"), HK_B)


def test_three_file_entries_fit_with_room_to_spare():
    entries = {m: file_entry(m, m.value) for m in Modality}
    data = encode_commitment(entries, HK_A)
    # budget: "gas1" 4 + "|s=" 3 + URI 30 + 3 × ("|i=" 3 + sha 43 + "." 1 + binding 22)
    assert len(data) == 4 + 3 + len(FILE_URI) + 3 * 69 == 244
    text = data.decode()
    assert text.startswith(f"gas1|s={FILE_URI}|i=") and text.count("|s=") == 1
    assert decode_commitment(data, HK_A) == entries


def test_three_hf_entries_with_pinned_commits_fit():
    entries = {m: hf_entry(m, m.value) for m in Modality}
    data = encode_commitment(entries, HK_A)
    assert len(data) == 4 + 3 + len(HF_URI) + 3 * (69 + 1 + 27) <= COMMITMENT_LIMIT
    assert decode_commitment(data, HK_A) == entries
    # the longest hf:// URI that still fits three pinned entries: 86 characters
    uri = "hf://" + "o" * 40 + "/" + "r" * 40
    assert len(uri) == 86
    assert (
        len(encode_commitment({m: hf_entry(m, m.value, uri=uri) for m in Modality}, HK_A)) == COMMITMENT_LIMIT
    )


def test_separate_stores_are_listed_once_each_and_indexed():
    entries = {
        IMAGE: file_entry(IMAGE, "i"),
        VIDEO: hf_entry(VIDEO, "v"),
        AUDIO: file_entry(AUDIO, "a"),
    }
    text = encode_commitment(entries, HK_A).decode()
    assert text.count("|s=") == 2 and "|v1=" in text and "|a=" in text
    assert decode_commitment(text.encode(), HK_A) == entries


def test_too_large_names_what_to_shorten():
    long_dir = "file:///home/miner/" + "very-long-directory-name/" * 4
    entries = {m: hf_entry(m, m.value, uri=f"hf://org-{m.value}/{'x' * 60}") for m in Modality}
    with pytest.raises(CommitmentTooLarge) as exc:
        encode_commitment(entries, HK_A)
    assert exc.value.size > COMMITMENT_LIMIT and exc.value.limit == COMMITMENT_LIMIT
    assert "store URI" in str(exc.value) and "same store" in str(exc.value)
    one_store = {m: hf_entry(m, m.value, uri=long_dir + "x" * 40) for m in Modality}
    with pytest.raises(CommitmentTooLarge, match="shorter store path"):
        encode_commitment(one_store, HK_A)


def test_encode_refuses_inconsistent_entries():
    good = file_entry(IMAGE, "i")
    with pytest.raises(ValueError, match="binding"):
        encode_commitment({IMAGE: good}, HK_B)
    with pytest.raises(ValueError, match="says modality"):
        encode_commitment({VIDEO: good}, HK_A)
    with pytest.raises(ValueError, match="must not contain"):
        encode_commitment({IMAGE: file_entry(IMAGE, "i", uri="file:///a|b")}, HK_A)
    with pytest.raises(ValueError, match="not lowercase hex"):
        encode_commitment({IMAGE: ModelEntry.create(IMAGE, FILE_URI, "main", sha("i"), HK_A)}, HK_A)


def test_empty_commitment_round_trips():
    assert encode_commitment({}, HK_A) == b"gas1"
    assert decode_commitment(b"gas1", HK_A) == {}


# --------------------------------------------------------------------------------------------
# property tests
# --------------------------------------------------------------------------------------------
hexes = st.binary(min_size=32, max_size=32).map(bytes.hex)
hotkeys = st.text(
    alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", min_size=1, max_size=48
)
uris = st.one_of(
    st.from_regex(r"\Afile:///[a-z0-9_./-]{1,40}\Z"),
    st.from_regex(r"\Ahf://[a-z0-9-]{1,20}/[a-z0-9_.-]{1,20}(@[a-z0-9]{1,8})?\Z"),
)


@st.composite
def entry_sets(draw):
    hotkey = draw(hotkeys)
    mods = draw(st.sets(st.sampled_from(list(Modality))))
    entries = {}
    for mod in mods:
        digest = draw(hexes)
        ref = draw(st.one_of(st.just(digest), st.binary(min_size=1, max_size=64).map(bytes.hex)))
        entries[mod] = ModelEntry.create(mod, draw(uris), ref, digest, hotkey)
    return hotkey, entries


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(entry_sets())
def test_round_trip(case):
    hotkey, entries = case
    try:
        data = encode_commitment(entries, hotkey)
    except CommitmentTooLarge as e:
        assert e.size > COMMITMENT_LIMIT
        return
    assert len(data) <= COMMITMENT_LIMIT
    assert decode_commitment(data, hotkey) == entries


@settings(max_examples=500)
@given(st.binary(max_size=500), hotkeys)
def test_random_bytes_never_raise(data, hotkey):
    out = decode_commitment(data, hotkey, quiet=True)
    assert isinstance(out, dict)


fieldish = st.text(alphabet="gas1|=.ivas012_-:/ABCxyz\x00\u00e9", max_size=120)


@settings(max_examples=500)
@given(fieldish, hotkeys)
def test_random_gas1_text_never_raises(tail, hotkey):
    out = decode_commitment(("gas1|" + tail).encode(), hotkey, quiet=True)
    assert all(isinstance(m, Modality) and e.bound_to(hotkey) for m, e in out.items())


@settings(max_examples=200)
@given(entry_sets(), st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=255))
def test_corrupted_commitments_never_raise_and_keep_only_bound_entries(case, pos, byte):
    hotkey, entries = case
    try:
        data = bytearray(encode_commitment(entries, hotkey))
    except CommitmentTooLarge:
        return
    if data:
        data[pos % len(data)] = byte
    out = decode_commitment(bytes(data), hotkey, quiet=True)
    assert all(e.bound_to(hotkey) and e.modality == m for m, e in out.items())


# --------------------------------------------------------------------------------------------
# malformed input: {} or the bad entry dropped, and one warning naming the hotkey
# --------------------------------------------------------------------------------------------
GOOD = encode_commitment({IMAGE: file_entry(IMAGE, "i"), VIDEO: file_entry(VIDEO, "v")}, HK_A)
G = GOOD.decode()


@pytest.mark.parametrize(
    ("data", "kept"),
    [
        (b"\xff\xfe not utf-8", 0),
        (b"", 0),
        (b'{"key": "r2/abc", "hash": "0123456789abcdef"}', 0),  # the reference's format
        (G.replace("gas1", "gas2", 1).encode(), 0),
        (G.replace("|i=", "|x=", 1).encode(), 0),  # unknown field
        ((G + "|i=" + G.split("|i=")[1].split("|")[0]).encode(), 0),  # image twice
        (G.replace("|s=file://", "|s=file ", 1).encode(), 0),  # bad store URI
        ((G + "|novalue").encode(), 0),
        (G.replace("|i=", "|i2=", 1).encode(), 1),  # store #2 does not exist: image dropped
        (G.replace("|v=", "|v=A", 1).encode(), 1),  # bad base64 length: video dropped
        (G.replace("|i=", "|i=x.y.z.", 1).encode(), 1),  # too many parts
        (b"gas1|s=" + FILE_URI.encode() * 20, 0),  # longer than 384 bytes
    ],
)
def test_malformed_commitments(caplog, data, kept):
    caplog.set_level(logging.WARNING, logger="gas.submissions.commitment")
    out = decode_commitment(data, HK_A)
    assert len(out) == kept
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and HK_A in warnings[0].getMessage()


def test_non_canonical_base64_is_refused():
    text = G.split("|i=")[1].split("|")[0]
    sha_part = text.split(".")[0]
    last = sha_part[-1]
    # 32 bytes → 43 chars: the last char carries 2 unused bits; flipping one keeps the bytes
    alt = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(last) ^ 1
    ]
    bad = G.replace(sha_part, sha_part[:-1] + alt, 1)
    assert set(decode_commitment(bad.encode(), HK_A, quiet=True)) == {VIDEO}


def test_binding_of_another_hotkey_is_dropped(caplog):
    caplog.set_level(logging.WARNING, logger="gas.submissions.commitment")
    assert decode_commitment(GOOD, HK_B) == {}  # a verbatim copy under another hotkey
    assert len(caplog.records) == 1 and HK_B in caplog.records[0].getMessage()


def test_one_foreign_entry_among_good_ones_is_dropped():
    mine = file_entry(IMAGE, "i")
    foreign = file_entry(VIDEO, "v", hotkey=HK_B)
    theirs = encode_commitment({VIDEO: foreign}, HK_B).decode().split("|v=")[1]
    data = encode_commitment({IMAGE: mine}, HK_A).decode() + "|v=" + theirs
    assert decode_commitment(data.encode(), HK_A, quiet=True) == {IMAGE: mine}


def test_str_input_is_accepted():
    assert decode_commitment(G, HK_A) == decode_commitment(GOOD, HK_A)


# --------------------------------------------------------------------------------------------
# resolve: earliest commitment of identical bytes wins
# --------------------------------------------------------------------------------------------
def commitment(hotkey: str, block: int, **by_mod: str) -> Commitment:
    entries = {Modality(m): file_entry(Modality(m), tag, hotkey) for m, tag in by_mod.items()}
    return Commitment(block=block, data=encode_commitment(entries, hotkey))


def test_earliest_commitment_wins_and_copies_are_dropped(caplog):
    caplog.set_level(logging.INFO, logger="gas.submissions.commitment")
    subs = resolve_submissions(
        {
            HK_B: commitment(HK_B, 20, image="same", video="vb"),
            HK_A: commitment(HK_A, 10, image="same"),
            HK_C: commitment(HK_C, 30, image="own", video="vb"),
        }
    )
    assert [(s.hotkey, s.block) for s in subs[IMAGE]] == [(HK_A, 10), (HK_C, 30)]
    assert [(s.hotkey, s.block) for s in subs[VIDEO]] == [(HK_B, 20)]
    assert subs[AUDIO] == []
    assert any("dropping copies" in r.getMessage() and HK_B in r.getMessage() for r in caplog.records)


def test_same_block_tie_goes_to_the_lower_hotkey():
    subs = resolve_submissions({h: commitment(h, 7, audio="x") for h in (HK_A, HK_B, HK_C)})
    assert [s.hotkey for s in subs[AUDIO]] == [min(HK_A, HK_B, HK_C)]


def test_first_seen_keeps_an_original_that_recommitted_later():
    # A committed image at block 10; B copied it at 50; A re-committed at 200 to add a video.
    now = {HK_A: commitment(HK_A, 200, image="same", video="v"), HK_B: commitment(HK_B, 50, image="same")}
    assert resolve_submissions(now)[IMAGE][0].hotkey == HK_B  # the chain alone forgets
    history = [
        type("R", (), {"block": 10, "hotkey": HK_A, "data": commitment(HK_A, 10, image="same").data})(),
        type("R", (), {"block": 50, "hotkey": HK_B, "data": now[HK_B].data})(),
        type("R", (), {"block": 200, "hotkey": HK_A, "data": now[HK_A].data})(),
    ]
    seen = first_seen_blocks(history)
    assert seen[(HK_A, sha("same"))] == 10 and seen[(HK_B, sha("same"))] == 50
    subs = resolve_submissions(now, first_seen=seen)
    assert [(s.hotkey, s.block) for s in subs[IMAGE]] == [(HK_A, 10)]
    assert [(s.hotkey, s.block) for s in subs[VIDEO]] == [(HK_A, 200)]


def test_malformed_commitments_are_skipped_in_resolve():
    subs = resolve_submissions({HK_A: Commitment(3, b"\xff"), HK_B: commitment(HK_B, 4, image="i")})
    assert [s.hotkey for s in subs[IMAGE]] == [HK_B]
