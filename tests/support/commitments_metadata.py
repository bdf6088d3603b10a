"""A hand-built V14 runtime metadata holding just ``Commitments.set_commitment``.

It reproduces the TypeInfo of subtensor's pallet_commitments (``Data`` with ``Raw0..Raw128``
as ``[u8; N]`` variants at index N+1, ``CommitmentInfo { fields: BoundedVec<Data, _> }``, the
``NetUid(u16)`` newtype), so ``bittensor_core.Runtime`` — the SDK's real Rust SCALE engine —
can compose the call offline. The pallet index (18) is arbitrary: it only prefixes the bytes.
"""

from __future__ import annotations

COMMITMENTS_PALLET_INDEX = 18
SET_COMMITMENT_CALL_INDEX = 0


def compact(n: int) -> bytes:
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    if n < 1 << 30:
        return ((n << 2) | 2).to_bytes(4, "little")
    body = n.to_bytes((n.bit_length() + 7) // 8, "little")
    return bytes([((len(body) - 4) << 2) | 3]) + body


def _str(text: str) -> bytes:
    raw = text.encode()
    return compact(len(raw)) + raw


def _vec(items: list[bytes]) -> bytes:
    return compact(len(items)) + b"".join(items)


def _opt(value: bytes | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + value


class _Registry:
    def __init__(self) -> None:
        self.types: list[bytes] = []

    def add(self, path: list[str], type_def: bytes, params: tuple = ()) -> int:
        tid = len(self.types)
        encoded_params = _vec([_str(n) + _opt(None if t is None else compact(t)) for n, t in params])
        self.types.append(compact(tid) + _vec([_str(p) for p in path]) + encoded_params + type_def + _vec([]))
        return tid


def _field(name: str | None, ty: int, type_name: str | None = None) -> bytes:
    return (
        _opt(None if name is None else _str(name))
        + compact(ty)
        + _opt(None if type_name is None else _str(type_name))
        + _vec([])
    )


def _composite(fields: list[bytes]) -> bytes:
    return b"\x00" + _vec(fields)


def _variant(variants: list[tuple[str, list[bytes], int]]) -> bytes:
    return b"\x01" + _vec([_str(n) + _vec(fs) + bytes([i]) + _vec([]) for n, fs, i in variants])


def _sequence(ty: int) -> bytes:
    return b"\x02" + compact(ty)


def _array(length: int, ty: int) -> bytes:
    return b"\x03" + length.to_bytes(4, "little") + compact(ty)


def _primitive(kind: int) -> bytes:
    return b"\x05" + bytes([kind])


def build() -> bytes:
    """``b"meta"`` + V14 metadata with the Commitments pallet's call and types."""
    r = _Registry()
    u8 = r.add([], _primitive(3))
    u16 = r.add([], _primitive(4))
    arrays = {n: r.add([], _array(n, u8)) for n in range(129)}
    data = r.add(
        ["pallet_commitments", "types", "Data"],
        _variant([("None", [], 0)] + [(f"Raw{n}", [_field(None, arrays[n])], n + 1) for n in range(129)]),
    )
    data_vec = r.add([], _sequence(data))
    bounded = r.add(
        ["bounded_collections", "bounded_vec", "BoundedVec"],
        _composite([_field(None, data_vec)]),
        (("T", data), ("S", None)),
    )
    info = r.add(["pallet_commitments", "types", "CommitmentInfo"], _composite([_field("fields", bounded)]))
    netuid = r.add(["subtensor_runtime_common", "NetUid"], _composite([_field(None, u16, "u16")]))
    call = r.add(
        ["pallet_commitments", "pallet", "Call"],
        _variant(
            [
                (
                    "set_commitment",
                    [_field("netuid", netuid, "NetUid"), _field("info", info)],
                    SET_COMMITMENT_CALL_INDEX,
                )
            ]
        ),
    )
    runtime_call = r.add(
        ["node_subtensor_runtime", "RuntimeCall"],
        _variant([("Commitments", [_field(None, call)], COMMITMENTS_PALLET_INDEX)]),
    )
    account = r.add(
        ["sp_core", "crypto", "AccountId32"], _composite([_field(None, r.add([], _array(32, u8)))])
    )
    address = r.add(
        ["sp_runtime", "multiaddress", "MultiAddress"], _variant([("Id", [_field(None, account)], 0)])
    )
    sig64 = r.add([], _array(64, u8))
    signature = r.add(["sp_runtime", "MultiSignature"], _variant([("Sr25519", [_field(None, sig64)], 1)]))
    extra = r.add([], b"\x04" + _vec([]))
    extrinsic = r.add(
        ["sp_runtime", "generic", "unchecked_extrinsic", "UncheckedExtrinsic"],
        _composite([_field(None, r.add([], _sequence(u8)))]),
        (("Address", address), ("Call", runtime_call), ("Signature", signature), ("Extra", extra)),
    )
    runtime = r.add(["node_subtensor_runtime", "Runtime"], _composite([]))
    pallet = (
        _str("Commitments")
        + _opt(None)
        + _opt(compact(call))
        + _opt(None)
        + _vec([])
        + _opt(None)
        + bytes([COMMITMENTS_PALLET_INDEX])
    )
    return (
        b"meta"
        + bytes([14])
        + _vec(r.types)
        + _vec([pallet])
        + compact(extrinsic)
        + bytes([4])
        + _vec([])
        + compact(runtime)
    )


def pallet_encoding(netuid: int, chunks: list[bytes]) -> bytes:
    """The bytes subtensor's own ``Encode`` impls give: call index, NetUid, Vec<Data::Raw>."""
    out = bytes([COMMITMENTS_PALLET_INDEX, SET_COMMITMENT_CALL_INDEX]) + netuid.to_bytes(2, "little")
    out += compact(len(chunks))
    for chunk in chunks:
        out += bytes([len(chunk) + 1]) + chunk  # Data::Raw: length + 1, then the bytes
    return out
