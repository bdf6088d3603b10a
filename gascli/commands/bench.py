"""``gascli bench``: offline benchmark tools.

``gascli bench run --image-model P`` benchmarks a detector package on local datasets in its sandbox
(the engine the validator runs; docs/benchmark.md). ``gascli bench score FILE`` scores a table of
detector outputs (columns ``label``, ``p_synthetic``, optional ``weight``; CSV or parquet) with the
same metrics the validator uses. numpy, rich, pyarrow and the engine are imported inside the
commands so that ``gascli --help`` stays fast.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(
    name="bench",
    help="Benchmark tools: run a detector on local datasets, score detector outputs offline.",
    no_args_is_help=True,
)

#: Exit code for malformed input (same as click's usage errors).
EXIT_BAD_INPUT = 2
#: Exit code when a benchmark could not run (bad package, missing dataset, aborted run).
EXIT_RUN_FAILED = 1


class Agg(str, Enum):
    geomean = "geomean"
    harmmean = "harmmean"
    mean = "mean"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@app.callback()
def _bench() -> None:
    """Benchmark tools: run a detector on local datasets, score detector outputs offline."""


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


# --------------------------------------------------------------------------------------------------
# bench run


class _RunFailed(Exception):
    """A benchmark could not run; the message is shown as ``error: ...`` (exit 1)."""


def _select_datasets(modality, names: list[str] | None, cache_dir: Path, mode: str):
    """The datasets for ``modality`` and their registry caps: named ones, else the synth datasets on
    disk, else every registry entry of the modality that has been imported."""
    from gas.bench.dataset import DatasetError, LocalDataset, datasets_dir, find_local, load_registry, resolve

    try:
        registry = load_registry()
    except DatasetError as exc:
        raise _RunFailed(f"dataset registry: {exc}") from None
    root = datasets_dir(cache_dir)
    chosen = []
    if names:
        for name in names:
            try:
                if name in registry:
                    ds = resolve(registry[name], cache_dir)
                elif (root / name).is_dir():
                    ds = LocalDataset(root / name)
                else:
                    raise _RunFailed(f"unknown dataset {name!r}: not in the registry and no dataset at {root / name}")
            except DatasetError as exc:
                raise _RunFailed(str(exc)) from None
            if ds.modality is modality:
                chosen.append(ds)
    else:
        try:
            chosen = [ds for ds in (LocalDataset(p) for p in find_local(root) if p.name.startswith("synth-"))
                      if ds.modality is modality]
        except DatasetError as exc:
            raise _RunFailed(str(exc)) from None
        if not chosen:
            for entry in registry.values():
                if entry.modality is modality:
                    try:
                        chosen.append(resolve(entry, cache_dir))
                    except DatasetError:
                        continue  # not imported: skipped when nothing was named
    if not chosen:
        if names:
            raise _RunFailed(f"none of the datasets {', '.join(names)} holds {modality.value} media")
        raise _RunFailed(
            f"no {modality.value} datasets under {root}: create the offline ones with `gascli data synth`, "
            "import some with `gascli data import`, or name them with --datasets"
        )
    caps = {}
    for ds in chosen:
        entry = registry.get(ds.name)
        if entry is not None:
            caps[ds.name] = entry.caps.small if mode == "small" else entry.caps.full
    return chosen, caps


def _tensor_cache(cache_dir: Path):
    try:
        from gas.bench.tensor_cache import TensorCache
    except ImportError:
        return None
    return TensorCache(cache_dir / "tensors", max_bytes=TENSOR_CACHE_BYTES)


#: Size cap of the decoded-tensor cache under ``<cache>/tensors``.
TENSOR_CACHE_BYTES = 8 << 30


def _summary(res, results_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = f"{res.modality} benchmark: {res.package.name} ({res.mode}, seed {res.seed})"
    table = Table(title=title, show_header=True)
    for col in ("dataset", "n", "accuracy", "MCC", "Brier", "sn34", "failed"):
        table.add_column(col, justify="left" if col == "dataset" else "right")

    def row(name: str, m, style: str | None = None) -> None:
        failed = m.n - m.statuses.get("ok", 0)
        table.add_row(name, str(m.n), f"{m.accuracy:.4f}", f"{m.mcc:.4f}", f"{m.brier:.4f}", f"{m.sn34:.4f}",
                      str(failed), style=style)

    for name, m in res.per_dataset.items():
        row(name, m)
    row("overall", res.overall, style="bold")
    console.print(table)
    if res.robustness is not None:
        r = res.robustness
        console.print(f"robustness: base sn34 {r.base_sn34:.4f}, augmented sn34 {r.aug_sn34:.4f} "
                      f"(n={r.n}), weight {r.weight:g}")
    console.print(f"[bold]score (sn34): {res.score:.4f}[/bold]")
    if res.exam is not None:
        verdict = "[green]PASSED[/green]" if res.exam.passed else "[red]FAILED[/red]"
        console.print(f"entrance exam: {verdict} ({res.exam.reason}; needs accuracy >= {res.exam.threshold:.2f})")
    c, t = res.counts, res.timings
    aug = f", robustness pass {c.recorded_aug}/{c.planned_aug}" if c.planned_aug else ""
    console.print(f"samples: {c.recorded}/{c.planned}{aug}; records: {c.ok} ok, {c.decode_error} decode errors, "
                  f"{c.inference_error} inference errors, {c.invalid_output} invalid outputs")
    console.print(f"sandbox: {res.environment.isolation} on {res.environment.device}, start-up {t.startup_s:.2f}s; "
                  f"{t.samples_per_s:.1f} samples/s over {t.wall_s:.1f}s")
    if not res.complete:
        console.print(f"[yellow]PARTIAL result: the wall-clock limit ({res.wall_limit_s:g}s) was hit; "
                      "run the same command with the same --results-dir to resume[/yellow]")
    console.print(f"results: {results_dir / 'results.json'} and {results_dir / res.records_file}")


def run(
    image_model: Path | None = typer.Option(None, "--image-model", help="Image detector package (dir or zip)."),
    video_model: Path | None = typer.Option(None, "--video-model", help="Video detector package (dir or zip)."),
    audio_model: Path | None = typer.Option(None, "--audio-model", help="Audio detector package (dir or zip)."),
    small: bool = typer.Option(False, "--small", help="Entrance-exam size: a capped sample per dataset (default)."),
    full: bool = typer.Option(False, "--full", help="Every sample the registry's full caps allow."),
    datasets: str | None = typer.Option(
        None, "--datasets",
        help="Comma-separated dataset names (default: the synth datasets on disk, else the imported "
             "registry datasets of the modality).",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the sampling plan and the robustness pass."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1,
                                          help="Samples per batch (default: image 32, video 4, audio 16)."),
    device: Device = typer.Option(Device.auto, "--device", help="Where the model runs inside the sandbox."),
    results_dir: Path | None = typer.Option(
        None, "--results-dir",
        help="Output directory (default <cache>/results/<timestamp>-<modality>; with several models, "
             "one sub-directory per modality). Re-using it resumes an interrupted run.",
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="GAS cache directory (env GAS_CACHE_DIR)."),
    workers: int | None = typer.Option(None, "--workers", min=0, help="Decode worker processes (default: CPUs)."),
    aug_weight: float = typer.Option(
        0.0, "--aug-weight", min=0.0, max=1.0,
        help="Weight of the robustness pass in the score (0 = no pass; the validator uses 0.2). Image/video.",
    ),
    wall_limit: float | None = typer.Option(
        None, "--wall-limit", min=0.0, help="Stop cleanly after this many seconds and write a partial result."),
    allow_unsandboxed: bool = typer.Option(
        False, "--allow-unsandboxed", help="Run the model even where no network isolation is available (unsafe)."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard an unfinished or finished run in --results-dir."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (and nothing else) on stdout."),
) -> None:
    """Benchmark detector packages on local datasets, each in its sandbox, and report the scores."""
    models = [(m, p) for m, p in (("image", image_model), ("video", video_model), ("audio", audio_model)) if p]
    if not models:
        typer.echo("error: give at least one of --image-model, --video-model, --audio-model", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if small and full:
        typer.echo("error: --small and --full are mutually exclusive", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    mode = "full" if full else "small"
    names = [n.strip() for n in datasets.split(",") if n.strip()] if datasets is not None else None
    if names is not None and not names:
        typer.echo("error: --datasets is empty", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)

    from datetime import datetime

    from gas.config import GasSettings, SettingsError, load_settings
    from gas.types import Modality

    try:
        settings = load_settings(GasSettings, overrides={"cache_dir": cache_dir})
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    cache = Path(settings.cache_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if allow_unsandboxed and not json_out:
        typer.secho("WARNING: --allow-unsandboxed runs untrusted code without network isolation", fg="red", err=True)

    from gas.bench.runner import DEFAULT_BATCH_SIZES, BenchmarkError, run_benchmark

    runs, errors = [], []
    for modality_name, package in models:
        modality = Modality(modality_name)
        if results_dir is None:
            out = cache / "results" / f"{stamp}-{modality_name}"
        else:
            out = results_dir if len(models) == 1 else results_dir / modality_name
        try:
            chosen, caps = _select_datasets(modality, names, cache, mode)
            res = run_benchmark(
                package, datasets=chosen, mode=mode, seed=seed,
                batch_size=batch_size or DEFAULT_BATCH_SIZES[modality_name], results_dir=out,
                cache=_tensor_cache(cache), workers=workers, device=device.value,
                allow_unsandboxed=allow_unsandboxed, wall_limit_s=wall_limit, aug_weight=aug_weight,
                caps=caps, progress=not json_out, fresh=fresh,
            )
        except (_RunFailed, BenchmarkError) as exc:
            message = " ".join(str(exc).split())
            errors.append({"modality": modality_name, "error": message})
            if not json_out:
                typer.echo(f"error: {modality_name}: {message}", err=True)
            continue
        runs.append({"modality": modality_name, "results_dir": str(out), "results": res.model_dump(mode="json")})
        if not json_out:
            _summary(res, out)
    if json_out:
        typer.echo(json.dumps({"runs": runs, "errors": errors}, allow_nan=False))
    if errors:
        raise typer.Exit(EXIT_RUN_FAILED)


app.command("run")(run)
