"""Read a table of detector outputs (CSV or parquet) for offline scoring.

Columns: ``label`` (0 = real, 1 = synthetic), ``p_synthetic`` (a probability in [0, 1]) and an
optional ``weight`` (finite, >= 0). Other columns are ignored. Every malformed value raises
:class:`ScoreFileError` naming the file, the column and the 1-based data row (for CSV also the
line), so a bad export can be fixed without guessing. pyarrow is imported only for parquet files.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gas.scoring.metrics import (
    DEFAULT_AGG,
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    BinaryMetrics,
    ScoringInputError,
    binary_metrics,
)

__all__ = ["CSV_SUFFIXES", "PARQUET_SUFFIXES", "ScoreFileError", "ScoreTable", "load_score_table"]

LABEL, P_SYNTHETIC, WEIGHT = "label", "p_synthetic", "weight"
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


class ScoreFileError(ScoringInputError):
    """A score file is missing, unreadable or holds a malformed value."""

    def __init__(self, path: Path | str, message: str, *, column: str | None = None, row: int | None = None):
        self.path = str(path)
        self.column = column
        self.row = row
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class ScoreTable:
    """Validated columns of a score file: int8 labels, float64 probabilities, optional weights."""

    path: Path
    labels: np.ndarray
    p_synthetic: np.ndarray
    weights: np.ndarray | None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def metrics(
        self, *, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA, agg: str = DEFAULT_AGG
    ) -> BinaryMetrics:
        return binary_metrics(self.labels, self.p_synthetic, self.weights, alpha=alpha, beta=beta, agg=agg)


def load_score_table(path: str | Path) -> ScoreTable:
    """Load and validate a ``.csv`` or ``.parquet``/``.pq`` score file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        header, columns, lines = _read_csv(path)
    elif suffix in PARQUET_SUFFIXES:
        header, columns, lines = _read_parquet(path)
    else:
        known = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
        raise ScoreFileError(path, f"unknown file type {path.suffix or '(none)'!r}; expected {known}")

    for name in (LABEL, P_SYNTHETIC):
        if name not in columns:
            have = ", ".join(repr(c) for c in header) or "none"
            raise ScoreFileError(path, f"missing column {name!r} (columns: {have})", column=name)
    n = len(columns[LABEL])
    if n == 0:
        raise ScoreFileError(path, "no data rows")

    label_f = _numbers(path, LABEL, columns[LABEL], lines)
    _check(path, LABEL, label_f, (label_f == 0.0) | (label_f == 1.0), "must be 0 or 1", columns, lines)
    p = _numbers(path, P_SYNTHETIC, columns[P_SYNTHETIC], lines)
    _check(path, P_SYNTHETIC, p, (p >= 0.0) & (p <= 1.0), "must be a probability in [0, 1]", columns, lines)
    weights = None
    if WEIGHT in columns:
        weights = _numbers(path, WEIGHT, columns[WEIGHT], lines)
        ok = np.isfinite(weights) & (weights >= 0.0)
        _check(path, WEIGHT, weights, ok, "must be a finite number >= 0", columns, lines)
    return ScoreTable(path=path, labels=label_f.astype(np.int8), p_synthetic=p, weights=weights)


# --------------------------------------------------------------------------------------------------


def _where(row: int, lines: Sequence[int] | None) -> str:
    """'row 3' for parquet, 'row 3 (line 4)' for CSV; ``row`` is 0-based here, shown 1-based."""
    where = f"row {row + 1}"
    return f"{where} (line {lines[row]})" if lines is not None else where


def _numbers(path: Path, column: str, values: Any, lines: Sequence[int] | None) -> np.ndarray:
    """Convert a column to float64; an empty or non-numeric cell raises, naming its row."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    for i, raw in enumerate(values):  # slow path, only to name the offending cell
        try:
            float(raw)
        except (TypeError, ValueError):
            shown = "an empty cell" if raw is None or not str(raw).strip() else f"not a number: {raw!r}"
            raise ScoreFileError(
                path, f"column {column!r}, {_where(i, lines)}: {shown}", column=column, row=i + 1
            ) from None
    raise ScoreFileError(path, f"column {column!r}: cannot be read as numbers", column=column)


def _check(
    path: Path,
    column: str,
    values: np.ndarray,
    ok: np.ndarray,
    rule: str,
    columns: dict[str, Any],
    lines: Sequence[int] | None,
) -> None:
    if ok.all():
        return
    i = int(np.flatnonzero(~ok)[0])
    raw = columns[column][i]
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        shown = "an empty cell"
    elif isinstance(raw, str):
        shown = repr(raw.strip())
    elif np.isnan(values[i]):
        shown = "NaN (or an empty cell)"
    else:
        shown = repr(values[i].item())
    raise ScoreFileError(
        path, f"column {column!r}, {_where(i, lines)}: {rule}, got {shown}", column=column, row=i + 1
    )


def _read_csv(path: Path) -> tuple[list[str], dict[str, list[str]], list[int]]:
    """Return the header, the cells of each wanted column, and the file line of each data row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise ScoreFileError(path, "empty file (no header, no data rows)")
            names = [h.strip() for h in header]
            seen: set[str] = set()
            for name in names:
                if name in seen and name in (LABEL, P_SYNTHETIC, WEIGHT):
                    raise ScoreFileError(path, f"duplicate column {name!r}", column=name)
                seen.add(name)
            wanted = {name: names.index(name) for name in (LABEL, P_SYNTHETIC, WEIGHT) if name in names}
            columns: dict[str, list[str]] = {name: [] for name in wanted}
            lines: list[int] = []
            for cells in reader:
                if not cells or all(not c.strip() for c in cells):
                    continue  # blank line
                lines.append(reader.line_num)
                for name, idx in wanted.items():
                    columns[name].append(cells[idx] if idx < len(cells) else "")
    except ScoreFileError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ScoreFileError(path, f"cannot read file ({exc.__class__.__name__}: {exc})") from exc
    return names, columns, lines


def _read_parquet(path: Path) -> tuple[list[str], dict[str, Any], None]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        raise ScoreFileError(path, "reading parquet needs pyarrow") from exc
    try:
        schema = pq.read_schema(path)
        names = list(schema.names)
        wanted = [name for name in (LABEL, P_SYNTHETIC, WEIGHT) if name in names]
        table = pq.read_table(path, columns=wanted)
    except (OSError, pa.ArrowException) as exc:
        raise ScoreFileError(path, f"cannot read file ({exc.__class__.__name__}: {exc})") from exc
    columns: dict[str, Any] = {}
    for name in wanted:
        col = table.column(name)
        kind = col.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            # Nulls become NaN, which the range checks then report as empty.
            columns[name] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
            columns[name] = col.to_pylist()
        else:
            raise ScoreFileError(path, f"column {name!r} has unsupported type {kind}", column=name)
    return names, columns, None
