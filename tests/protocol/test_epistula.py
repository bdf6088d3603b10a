from __future__ import annotations

import hashlib
import threading

import pytest
from bittensor_core import Keypair
from hypothesis import given, settings
from hypothesis import strategies as st

from gas.chain.base import Metagraph, Neuron
from gas.protocol.epistula import (
    BadSignature,
    BodyTooLarge,
    EpistulaVerifier,
    FutureRequest,
    MalformedRequest,
    MissingHeader,
    NotAuthorized,
    ReplayedRequest,
    StaleRequest,
    UnsupportedVersion,
    WrongRecipient,
    body_hash,
    metagraph_authorizer,
    sign_request,
    signing_message,
)

ALICE = Keypair.create_from_uri("//Alice")
BOB = Keypair.create_from_uri("//Bob")
CHARLIE = Keypair.create_from_uri("//Charlie")
NOW = 1_700_000_000_000
BODY = b'{"task_id":"t-42","media":"abc"}'


def verifier(**kw) -> EpistulaVerifier:
    kw.setdefault("self_hotkey", BOB.ss58_address)
    kw.setdefault("max_body_bytes", 1 << 20)
    return EpistulaVerifier(**kw)


def signed(body: bytes = BODY, **kw) -> dict[str, str]:
    kw.setdefault("signed_for", BOB.ss58_address)
    kw.setdefault("now_ms", NOW)
    return sign_request(body, ALICE, **kw)


def test_round_trip():
    headers = signed()
    assert headers["Epistula-Version"] == "2"
    assert headers["Epistula-Timestamp"] == str(NOW)
    assert headers["Epistula-Request-Signature"].startswith("0x")
    assert len(headers["Epistula-Request-Signature"]) == 2 + 128
    got = verifier().verify(headers, BODY, now_ms=NOW + 1000)
    assert got.hotkey == ALICE.ss58_address
    assert got.uuid == headers["Epistula-Uuid"]
    assert got.timestamp_ms == NOW


def test_real_clock_round_trip():
    assert verifier().verify(sign_request(BODY, ALICE, signed_for=BOB.ss58_address), BODY).hotkey


def test_header_lookup_is_case_insensitive():
    headers = {k.lower(): v for k, v in signed().items()}
    assert verifier().verify(headers, BODY, now_ms=NOW).hotkey == ALICE.ss58_address
    headers = {k.upper(): v for k, v in signed().items()}
    assert verifier().verify(headers, BODY, now_ms=NOW).hotkey == ALICE.ss58_address


def test_tampered_body_fails():
    with pytest.raises(BadSignature) as e:
        verifier().verify(signed(), BODY + b" ", now_ms=NOW)
    assert e.value.status == 401


@pytest.mark.parametrize(
    "header,value",
    [
        ("Epistula-Uuid", "00000000-0000-4000-8000-000000000000"),
        ("Epistula-Timestamp", str(NOW - 1)),
        ("Epistula-Signed-By", CHARLIE.ss58_address),
    ],
)
def test_tampered_header_fails(header, value):
    headers = signed()
    headers[header] = value
    with pytest.raises(BadSignature):
        verifier().verify(headers, BODY, now_ms=NOW)


def test_tampered_signed_for_fails():
    # Re-addressed to Charlie: Charlie's verifier rejects the signature ...
    headers = signed()
    headers["Epistula-Signed-For"] = CHARLIE.ss58_address
    with pytest.raises(BadSignature):
        verifier(self_hotkey=CHARLIE.ss58_address).verify(headers, BODY, now_ms=NOW)
    # ... and Bob rejects a request meant for Charlie (or for nobody).
    with pytest.raises(WrongRecipient) as e:
        verifier().verify(signed(signed_for=CHARLIE.ss58_address), BODY, now_ms=NOW)
    assert e.value.status == 401
    headers = signed(signed_for=None)
    assert "Epistula-Signed-For" not in headers
    headers["Epistula-Signed-For"] = ""
    with pytest.raises(WrongRecipient):
        verifier().verify(headers, BODY, now_ms=NOW)


def test_bad_signature_bytes_fail():
    headers = signed()
    headers["Epistula-Request-Signature"] = "0x" + "00" * 64
    with pytest.raises(BadSignature):
        verifier().verify(headers, BODY, now_ms=NOW)


def test_replay_fails_and_bad_requests_do_not_burn_the_nonce():
    v = verifier()
    headers = signed()
    with pytest.raises(BadSignature):
        v.verify(headers, BODY + b"x", now_ms=NOW)
    v.verify(headers, BODY, now_ms=NOW)
    with pytest.raises(ReplayedRequest) as e:
        v.verify(headers, BODY, now_ms=NOW + 10_000)
    assert e.value.status == 401
    # a fresh uuid is fine
    v.verify(signed(), BODY, now_ms=NOW)


def test_nonce_expires_only_after_the_window():
    v = verifier(max_age_s=30, max_future_s=5)
    headers = signed()
    v.verify(headers, BODY, now_ms=NOW)
    with pytest.raises(ReplayedRequest):
        v.verify(headers, BODY, now_ms=NOW + 30_000)
    with pytest.raises(StaleRequest):  # once forgotten, the clock window rejects it
        v.verify(headers, BODY, now_ms=NOW + 35_001)


def test_concurrent_replay_accepts_exactly_one():
    v = verifier()
    headers = signed()
    results: list[str] = []

    def go():
        try:
            v.verify(headers, BODY, now_ms=NOW)
            results.append("ok")
        except ReplayedRequest:
            results.append("replay")

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["replay"] * 7


def test_stale_and_future_timestamps_fail():
    v = verifier(max_age_s=30, max_future_s=5)
    v.verify(signed(now_ms=NOW - 30_000), BODY, now_ms=NOW)
    v.verify(signed(now_ms=NOW + 5_000), BODY, now_ms=NOW)
    with pytest.raises(StaleRequest) as e:
        v.verify(signed(now_ms=NOW - 30_001), BODY, now_ms=NOW)
    assert e.value.status == 401
    with pytest.raises(FutureRequest) as e:
        v.verify(signed(now_ms=NOW + 5_001), BODY, now_ms=NOW)
    assert e.value.status == 401


def test_body_cap_is_checked_before_hashing(monkeypatch):
    import gas.protocol.epistula as ep

    def boom(body):
        raise AssertionError("hashed an oversized body")

    body = b"x" * 101
    headers = sign_request(body, ALICE, signed_for=BOB.ss58_address)
    monkeypatch.setattr(ep, "body_hash", boom)
    with pytest.raises(BodyTooLarge) as e:
        verifier(max_body_bytes=100).verify(headers, body)
    assert e.value.status == 413


@pytest.mark.parametrize(
    "header",
    [
        "Epistula-Version",
        "Epistula-Timestamp",
        "Epistula-Uuid",
        "Epistula-Signed-By",
        "Epistula-Signed-For",
        "Epistula-Request-Signature",
    ],
)
def test_missing_header_is_400_and_named(header):
    headers = signed()
    del headers[header]
    with pytest.raises(MissingHeader) as e:
        verifier().verify(headers, BODY, now_ms=NOW)
    assert e.value.status == 400
    assert e.value.header == header
    assert header in str(e.value)


@pytest.mark.parametrize(
    "header,value,exc",
    [
        ("Epistula-Version", "1", UnsupportedVersion),
        ("Epistula-Timestamp", "1.7e12", MalformedRequest),
        ("Epistula-Timestamp", "-5", MalformedRequest),
        ("Epistula-Uuid", "not-a-uuid", MalformedRequest),
        ("Epistula-Uuid", "3F2B1C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D", MalformedRequest),
        ("Epistula-Signed-By", "garbage", MalformedRequest),
        ("Epistula-Request-Signature", "deadbeef", MalformedRequest),
    ],
)
def test_malformed_headers_are_400(header, value, exc):
    headers = signed()
    headers[header] = value
    with pytest.raises(exc) as e:
        verifier().verify(headers, BODY, now_ms=NOW)
    assert e.value.status == 400
    assert e.value.header == header


def _metagraph(*neurons: Neuron) -> Metagraph:
    return Metagraph(netuid=34, block=100, neurons=neurons)


def test_unregistered_signer_is_403():
    auth = metagraph_authorizer(lambda: _metagraph())
    with pytest.raises(NotAuthorized) as e:
        verifier(authorize=auth).verify(signed(), BODY, now_ms=NOW)
    assert e.value.status == 403
    assert ALICE.ss58_address in str(e.value) and "not registered" in str(e.value)


def test_no_permit_is_403_and_permit_passes():
    no_permit = _metagraph(Neuron(uid=0, hotkey=ALICE.ss58_address, coldkey="c", stake=10.0))
    with pytest.raises(NotAuthorized) as e:
        verifier(authorize=metagraph_authorizer(lambda: no_permit)).verify(signed(), BODY, now_ms=NOW)
    assert e.value.status == 403
    assert "no validator permit" in str(e.value) and ALICE.ss58_address in str(e.value)
    permit = _metagraph(Neuron(uid=0, hotkey=ALICE.ss58_address, coldkey="c", validator_permit=True))
    assert verifier(authorize=metagraph_authorizer(lambda: permit)).verify(signed(), BODY, now_ms=NOW)


def test_authorizer_rules():
    n = Neuron(uid=0, hotkey="hk", coldkey="c", stake=50.0)
    mg = _metagraph(n)
    assert metagraph_authorizer(lambda: mg, require_permit=False)("hk") is None
    assert metagraph_authorizer(lambda: mg, require_permit=False)("other") is not None
    assert metagraph_authorizer(lambda: mg, require_permit=True, min_stake=50)("hk") is None
    assert "below the minimum" in metagraph_authorizer(lambda: mg, require_permit=True, min_stake=51)("hk")
    assert "below the minimum" in metagraph_authorizer(lambda: mg, require_permit=False, min_stake=51)("hk")
    assert metagraph_authorizer(lambda: mg, require_permit=False, min_stake=50)("hk") is None


def test_unauthorised_request_does_not_burn_the_nonce():
    allowed = {"yes": False}
    v = verifier(authorize=lambda hk: None if allowed["yes"] else f"hotkey {hk} is banned")
    headers = signed()
    with pytest.raises(NotAuthorized):
        v.verify(headers, BODY, now_ms=NOW)
    allowed["yes"] = True
    v.verify(headers, BODY, now_ms=NOW)


def test_nonce_ttl_shorter_than_window_is_refused():
    with pytest.raises(ValueError):
        verifier(max_age_s=30, max_future_s=5, nonce_ttl_s=10)


# Fixed test vector. sr25519 signatures are randomised (a fresh nonce per signature), so the
# signature bytes cannot be pinned; the message is pinned exactly and a signature made now over
# it must verify with nothing but the ss58 address.
VECTOR_UUID = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
VECTOR_TS = 1_714_000_000_123
VECTOR_BODY_SHA256 = "ca5df4e90946d8e29767d56f375da6bc125f19b52b4767945d32373e1800724d"
VECTOR_MESSAGE = (
    "ca5df4e90946d8e29767d56f375da6bc125f19b52b4767945d32373e1800724d"
    ".3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    ".1714000000123"
    ".5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
)


def test_fixed_vector():
    assert ALICE.ss58_address == "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    assert BOB.ss58_address == "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
    assert hashlib.sha256(BODY).hexdigest() == VECTOR_BODY_SHA256 == body_hash(BODY)
    assert signing_message(VECTOR_BODY_SHA256, VECTOR_UUID, VECTOR_TS, BOB.ss58_address) == VECTOR_MESSAGE
    assert signing_message(VECTOR_BODY_SHA256, VECTOR_UUID, VECTOR_TS, None) == VECTOR_MESSAGE.rsplit(".", 1)[0] + "."

    headers = sign_request(BODY, ALICE, signed_for=BOB.ss58_address, now_ms=VECTOR_TS, uuid=VECTOR_UUID)
    assert headers == {
        "Epistula-Version": "2",
        "Epistula-Timestamp": "1714000000123",
        "Epistula-Uuid": VECTOR_UUID,
        "Epistula-Signed-By": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        "Epistula-Signed-For": "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
        "Epistula-Request-Signature": headers["Epistula-Request-Signature"],
    }
    sig = bytes.fromhex(headers["Epistula-Request-Signature"][2:])
    public_only = Keypair(ss58_address="5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
    assert public_only.verify(VECTOR_MESSAGE.encode(), sig)
    assert public_only.verify(VECTOR_MESSAGE.encode(), ALICE.sign(VECTOR_MESSAGE.encode()))
    assert not public_only.verify((VECTOR_MESSAGE + "x").encode(), sig)
    assert verifier().verify(headers, BODY, now_ms=VECTOR_TS).uuid == VECTOR_UUID


@settings(max_examples=30, deadline=None)
@given(body=st.binary(max_size=4096))
def test_random_bodies_round_trip(body):
    v = verifier(max_body_bytes=4096)
    assert v.verify(signed(body), body, now_ms=NOW).hotkey == ALICE.ss58_address
