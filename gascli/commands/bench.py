"""``gascli bench``: offline benchmark tools.

``gascli bench score FILE`` scores a table of detector outputs (columns ``label``, ``p_synthetic``,
optional ``weight``; CSV or parquet) with the same metrics the validator uses. numpy, rich and the
scoring code are imported inside the command so that ``gascli --help`` stays fast.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(
    name="bench",
    help="Benchmark tools: score detector outputs offline with the subnet's metrics.",
    no_args_is_help=True,
)

#: Exit code for malformed input (same as click's usage errors).
EXIT_BAD_INPUT = 2


class Agg(str, Enum):
    geomean = "geomean"
    harmmean = "harmmean"
    mean = "mean"


@app.callback()
def _bench() -> None:
    """Benchmark tools: score detector outputs offline with the subnet's metrics."""


@app.command("score")
def score(
    file: Path = typer.Argument(..., help="CSV or parquet with columns label, p_synthetic[, weight]."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (and nothing else)."),
    alpha: float = typer.Option(1.2, "--alpha", help="Exponent on the MCC term."),
    beta: float = typer.Option(1.8, "--beta", help="Exponent on the Brier term."),
    agg: Agg = typer.Option(Agg.geomean, "--agg", help="How the two terms are combined."),
) -> None:
    """Print accuracy, MCC, Brier and sn34 for a file of detector outputs."""
    from gas.scoring.metrics import ScoringInputError
    from gas.scoring.score_file import load_score_table

    try:
        table = load_score_table(file)
        result = table.metrics(alpha=alpha, beta=beta, agg=agg.value)
    except ScoringInputError as exc:
        message = " ".join(str(exc).split())  # always one line
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    if json_out:
        typer.echo(json.dumps({"file": str(file), **result.to_dict()}, allow_nan=False))
        return

    from rich.console import Console
    from rich.table import Table

    out = Table(title=f"Detector metrics: {file}", show_header=True)
    out.add_column("metric")
    out.add_column("value", justify="right")
    weighted = table.weights is not None
    out.add_row("samples (n)", str(result.n))
    if weighted:
        out.add_row("weight sum", f"{result.weight_sum:.6g}")
    for name in ("tp", "tn", "fp", "fn"):
        value = getattr(result, name)
        out.add_row(name.upper(), f"{value:.6g}" if weighted else str(int(value)))
    out.add_row("accuracy", f"{result.accuracy:.4f}")
    out.add_row("MCC", f"{result.mcc:.4f}")
    out.add_row("Brier", f"{result.brier:.4f}")
    out.add_row(f"sn34 ({result.agg}, alpha={result.alpha:g}, beta={result.beta:g})", f"{result.sn34:.4f}")
    Console().print(out)
