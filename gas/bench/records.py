"""Per-sample records of a benchmark run, and the crash-safe checkpoint they are appended to.

Every planned sample ends as exactly one record, whatever happened to it (reference flaw W20: failed
decodes left no row). ``status`` is one of:

- ``ok``: the model answered with finite logits;
- ``decode_error``: the media could not be decoded or preprocessed;
- ``inference_error``: the sandbox failed on the sample's batch (the model raised, returned a bad
  shape, timed out or crashed);
- ``invalid_output``: the model's row of logits holds NaN or an infinity.

Every failed record carries ``p_synthetic = 1 - y`` (maximally wrong,
:func:`gas.scoring.probabilities.maximally_wrong`), so it counts as a confident miss in every metric.

Checkpoint (``<results_dir>/records.partial.jsonl``): one JSON line per event, each written with a
single ``write`` and ``fsync``'d. The first line is the header (plan hash, package sha256); then one
``session`` line per (re)start and one ``batch`` line per completed batch holding all its records.
A crash can only tear the last line, which is ignored (and cut off) on resume, so a batch is either
fully recorded or not at all, and a resumed run never counts a sample twice. At the end,
``records.parquet`` is written atomically (temp file + rename) and the checkpoint is removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gas.storage.files import atomic_write, fsync_dir
from typing import Any, Literal

__all__ = [
    "CHECKPOINT_NAME",
    "RECORDS_NAME",
    "STATUSES",
    "Checkpoint",
    "CheckpointError",
    "SampleRecord",
    "read_records",
    "record_key",
    "records_schema",
    "records_to_table",
    "write_records_parquet",
]

CHECKPOINT_NAME = "records.partial.jsonl"
RECORDS_NAME = "records.parquet"
CHECKPOINT_KIND = "gas-bench-checkpoint"
CHECKPOINT_VERSION = 1

Status = Literal["ok", "decode_error", "inference_error", "invalid_output"]
STATUSES: tuple[str, ...] = ("ok", "decode_error", "inference_error", "invalid_output")
MAX_ERROR_CHARS = 500


class CheckpointError(RuntimeError):
    """The checkpoint file is unreadable (not a torn last line: a damaged header or middle)."""


@dataclass
class SampleRecord:
    """One evaluated sample (one row of records.parquet)."""

    sample_id: str
    dataset: str
    modality: str
    label: str  # real | synthetic | semisynthetic
    y: int  # 0 real, 1 synthetic or semisynthetic
    sha256: str
    source: str
    generator_hotkey: str | None
    generator_model: str | None
    status: Status
    error: str | None
    logits: list[float]  # raw model output (may hold NaN/inf for invalid_output); [] when none
    p_synthetic: float  # after maximally_wrong: 1 - y for every failed row
    predicted: int  # p_synthetic > 0.5
    correct: bool
    decode_s: float
    infer_s: float  # the batch's inference time / the number of samples that reached the model
    batch_index: int
    plan_index: int  # position in the pass's plan order
    aug: str | None = None  # robustness augmentation name; None for the base pass
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # not persisted

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra", None)
        return d


_COLUMNS = [f for f in SampleRecord.__dataclass_fields__ if f != "extra"]


def record_key(rec: dict[str, Any] | SampleRecord) -> tuple[str, str, str | None]:
    """What makes a record unique in a run: (dataset, sample_id, aug)."""
    if isinstance(rec, SampleRecord):
        return (rec.dataset, rec.sample_id, rec.aug)
    return (rec["dataset"], rec["sample_id"], rec.get("aug"))


def records_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("sample_id", pa.string()),
            ("dataset", pa.string()),
            ("modality", pa.string()),
            ("label", pa.string()),
            ("y", pa.int8()),
            ("sha256", pa.string()),
            ("source", pa.string()),
            ("generator_hotkey", pa.string()),
            ("generator_model", pa.string()),
            ("status", pa.string()),
            ("error", pa.string()),
            ("logits", pa.list_(pa.float64())),
            ("p_synthetic", pa.float64()),
            ("predicted", pa.int8()),
            ("correct", pa.bool_()),
            ("decode_s", pa.float64()),
            ("infer_s", pa.float64()),
            ("batch_index", pa.int32()),
            ("plan_index", pa.int32()),
            ("aug", pa.string()),
        ]
    )


def _sort_key(rec: dict[str, Any]) -> tuple:
    return (rec.get("aug") is not None, rec.get("aug") or "", rec["plan_index"])


def records_to_table(records: Iterable[dict[str, Any] | SampleRecord]):
    """A pyarrow table of ``records`` in plan order (base pass first), with the fixed schema."""
    import pyarrow as pa

    rows = [r.to_dict() if isinstance(r, SampleRecord) else r for r in records]
    rows.sort(key=_sort_key)
    schema = records_schema()
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)


def write_records_parquet(records: Iterable[dict[str, Any] | SampleRecord] | Any, path: Path) -> Path:
    """Write records (or an already built table) to ``path`` atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = records if isinstance(records, pa.Table) else records_to_table(records)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def read_records(path: Path):
    """records.parquet as a pyarrow table."""
    import pyarrow.parquet as pq

    return pq.read_table(Path(path))


# --------------------------------------------------------------------------------------------------
# checkpoint


def _dumps(obj: Any) -> str:
    # NaN/inf logits of invalid_output rows are kept as they are (Python's json reads them back).
    return json.dumps(obj, separators=(",", ":"), allow_nan=True)


class Checkpoint:
    """The append-only ``records.partial.jsonl`` of a results directory."""

    def __init__(self, results_dir: Path) -> None:
        self.dir = Path(results_dir)
        self.path = self.dir / CHECKPOINT_NAME
        #: the last ``sandbox`` line seen by :meth:`read` (isolation, device, torch of a past session)
        self.last_sandbox: dict[str, Any] | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
        """``(header, records, sessions)``. A torn last line (no newline: the crash hit mid-write) is
        dropped and cut off the file; a damaged complete line raises :class:`CheckpointError`."""
        if not self.exists():
            return None, [], 0
        data = self.path.read_bytes()
        good_end = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
        header: dict[str, Any] | None = None
        records: list[dict[str, Any]] = []
        sessions = 0
        for i, raw in enumerate(data[:good_end].split(b"\n")[:-1]):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                raise CheckpointError(f"{self.path}: line {i + 1} is damaged")
            kind = obj.get("kind")
            if header is None:
                if kind != CHECKPOINT_KIND:
                    raise CheckpointError(f"{self.path}: not a GAS benchmark checkpoint")
                header = obj
            elif kind == "session":
                sessions += 1
            elif kind == "sandbox":
                self.last_sandbox = obj
            elif kind == "batch":
                recs = obj.get("records")
                if not isinstance(recs, list):
                    raise CheckpointError(f"{self.path}: line {i + 1}: batch without records")
                records.extend(recs)
        if header is None:
            raise CheckpointError(f"{self.path}: no header line")
        if good_end < len(data):
            with open(self.path, "rb+") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        return header, records, sessions

    def start(self, header: dict[str, Any]) -> None:
        """Create a new checkpoint holding only ``header`` (replacing any old one)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        body = {"kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION, **header}
        atomic_write(self.path, (_dumps(body) + "\n").encode())

    def _append(self, obj: dict[str, Any]) -> None:
        line = (_dumps(obj) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def append_session(self, info: dict[str, Any]) -> None:
        self._append({"kind": "session", **info})

    def append_sandbox(self, info: dict[str, Any]) -> None:
        self._append({"kind": "sandbox", **info})

    def append_batch(self, pass_name: str, batch_index: int, records: Sequence[dict[str, Any] | SampleRecord]) -> None:
        rows = [r.to_dict() if isinstance(r, SampleRecord) else r for r in records]
        self._append({"kind": "batch", "pass": pass_name, "batch_index": batch_index, "records": rows})

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.dir)
