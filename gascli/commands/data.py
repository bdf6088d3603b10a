"""``gascli data``: benchmark datasets on disk: synthesize the offline ones, import, list, verify.

Datasets live in ``<cache>/datasets/<name>/`` (``GAS_CACHE_DIR``), each a folder of original media
bytes plus ``manifest.parquet``; the registry is ``configs/datasets/*.yaml`` (docs/datasets.md).
Only typer is imported at module level; the dataset code, torch and diffusers load when a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="data",
    help="Benchmark datasets: synthesize offline demo data, import folders or HF datasets, list, verify.",
    no_args_is_help=True,
)

#: Exit codes: 1 for a dataset problem, 2 for bad usage (as click's usage errors).
EXIT_ERROR = 1
EXIT_USAGE = 2

DestOpt = Annotated[
    Path | None, typer.Option("--dest", help="Datasets directory (default: <cache>/datasets).", show_default=False)
]
RegistryOpt = Annotated[
    list[Path] | None,
    typer.Option("--registry", help="Registry YAML file or directory (repeatable; default: configs/datasets)."),
]


@app.callback()
def _data() -> None:
    """Benchmark datasets: synthesize offline demo data, import folders or HF datasets, list, verify."""


def _fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: ...`` (one line unless the message is a list of problems) and return the exit."""
    text = str(message)
    if "\n" not in text:
        text = " ".join(text.split())
    typer.echo(f"error: {text}", err=True)
    return typer.Exit(code)


def _cache_dir() -> Path:
    from gas.config import GasSettings, SettingsError, load_settings

    try:
        return load_settings(GasSettings).cache_dir
    except SettingsError as e:
        raise _fail(str(e), EXIT_USAGE) from None


def _dest(dest: Path | None) -> Path:
    from gas.bench.dataset import datasets_dir

    return dest.expanduser() if dest is not None else datasets_dir(_cache_dir())


def _registry(paths: list[Path] | None):
    from gas.bench.dataset import RegistryError, load_registry

    try:
        return load_registry(paths or None)
    except RegistryError as e:
        raise _fail(str(e)) from None


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# --------------------------------------------------------------------------------------------------
# synth
@app.command()
def synth(
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Samples per dataset.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same bytes.")] = 0,
    modality: Annotated[
        list[str] | None,
        typer.Option("--modality", "-m", help="image, video or audio (repeatable; default: all three)."),
    ] = None,
    dest: DestOpt = None,
) -> None:
    """Build the offline demo datasets (synth-*): photos vs tiny random diffusion/GAN images, pan-zoom vs
    latent-walk clips, espeak speech vs tones/chirps/noise. Nothing is downloaded."""
    from gas.types import Modality

    mods = []
    for m in modality or ["image", "video", "audio"]:
        try:
            mods.append(Modality(m.lower()))
        except ValueError:
            raise _fail(f"--modality must be image, video or audio, got {m!r}", EXIT_USAGE) from None
    root = _dest(dest)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gas.bench.dataset import DatasetError
    from gas.bench.synth import SYNTH_DATASETS, synthesize

    console = Console(stderr=True)
    names = [s.name for s in SYNTH_DATASETS if s.modality in mods]
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks = {name: bar.add_task(name, total=n, start=False) for name in names}

        def progress(name: str, done: int, total: int) -> None:
            if done == 0:
                bar.start_task(tasks[name])
            bar.update(tasks[name], completed=done, total=total)

        try:
            made = synthesize(root, n=n, seed=seed, modalities=mods, progress=progress)
        except DatasetError as e:
            raise _fail(str(e)) from None
    for ds in made:
        typer.echo(f"{ds.name:<24} {ds.modality.value:<6} {len(ds):>5} samples  {_size(ds.size_bytes()):>9}  {ds.root}")


# --------------------------------------------------------------------------------------------------
# import
@app.command("import")
def import_(
    source: Annotated[
        str, typer.Argument(help="A folder, hf://org/repo (an HF dataset repo), or a registry dataset name.")
    ],
    name: Annotated[str | None, typer.Option("--name", help="Dataset name (default: the registry name/folder name).")] = None,
    modality: Annotated[str | None, typer.Option("--modality", "-m", help="image, video or audio.")] = None,
    label: Annotated[str | None, typer.Option("--label", "-l", help="real, synthetic or semisynthetic.")] = None,
    max_samples: Annotated[
        int | None, typer.Option("--max-samples", min=1, help="Take at most N files (a seeded random subset).")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="For a registry name: take caps.small or caps.full samples (small|full).")
    ] = "small",
    revision: Annotated[str | None, typer.Option("--revision", help="HF branch, tag or commit.")] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Only repo paths containing this (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random subset.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing dataset of that name.")] = False,
    dest: DestOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Import media as a dataset, bytes unmodified: a folder (by extension), an HF dataset repo, or a
    registry entry by name (its source, modality, label, filters and caps)."""
    from gas.bench.dataset import DatasetError
    from gas.bench.importer import import_folder, import_hf
    from gas.types import MediaLabel, Modality

    if mode not in ("small", "full"):
        raise _fail(f"--mode must be small or full, got {mode!r}", EXIT_USAGE)
    root = _dest(dest)
    folder = Path(source).expanduser()
    entry = None
    if not source.startswith("hf://") and not folder.is_dir():
        entries = _registry(registry)
        entry = entries.get(source)
        if entry is None:
            raise _fail(f"{source!r} is not a folder, an hf://org/repo URL or a registry dataset name", EXIT_USAGE)
        if not entry.is_hf:
            raise _fail(
                f"registry dataset {entry.name!r} is local ({entry.source}): nothing to download; "
                + ("run `gascli data synth`" if entry.name.startswith("synth-") else "import its folder instead")
            )

    def pick(value: str | None, enum, what: str, default=None):
        raw = value if value is not None else default
        if raw is None:
            raise _fail(f"--{what} is required for {source}", EXIT_USAGE)
        try:
            return enum(raw.lower() if isinstance(raw, str) else raw)
        except ValueError:
            choices = ", ".join(m.value for m in enum)
            raise _fail(f"--{what} must be one of {choices}, got {raw!r}", EXIT_USAGE) from None

    mod = pick(modality, Modality, "modality", entry.modality.value if entry else None)
    lab = pick(label, MediaLabel, "label", entry.label.value if entry else None)
    if entry is not None:
        ds_name = name or entry.name
        cap = max_samples if max_samples is not None else (entry.caps.small if mode == "small" else entry.caps.full)
    else:
        ds_name = name or (source.rstrip("/").rsplit("/", 1)[-1] if source.startswith("hf://") else folder.resolve().name)
        cap = max_samples

    def progress(done: int, total: int | None) -> None:
        if done % 50 == 0 or (total is not None and done == total):
            typer.echo(f"  {done}/{total if total is not None else '?'}", err=True)

    try:
        if entry is not None or source.startswith("hf://"):
            repo = entry.hf_repo if entry is not None else source
            report = import_hf(
                repo,
                root,
                ds_name,
                mod,
                lab,
                revision=revision or (entry.revision if entry else None),
                max_samples=cap,
                include=list(include or []) + (entry.include_paths if entry else []),
                exclude=entry.exclude_paths if entry else (),
                media_type=entry.media_type if entry else None,
                seed=seed,
                overwrite=overwrite,
                progress=progress,
            )
        else:
            report = import_folder(
                folder, root, ds_name, mod, lab, max_samples=cap, seed=seed, overwrite=overwrite, progress=progress
            )
    except DatasetError as e:
        raise _fail(str(e)) from None
    ds = report.dataset
    assert ds is not None
    typer.echo(
        f"imported {report.imported} {mod.value} file(s) as {ds.name!r} ({lab.value}) into {ds.root}"
        + (f" at {report.revision[:12]}" if report.revision else "")
    )
    if report.skipped:
        typer.echo(
            f"skipped {report.skipped}: {report.skipped_unreadable} unreadable, {report.skipped_invalid} not "
            f"{mod.value} media, {report.skipped_duplicate} duplicate bytes",
            err=True,
        )
        for w in report.warnings[:10]:
            typer.echo(f"  {w}", err=True)
        if len(report.warnings) > 10:
            typer.echo(f"  ... and {len(report.warnings) - 10} more", err=True)


# --------------------------------------------------------------------------------------------------
# list
@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    dest: DestOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Datasets on disk and in the registry: name, modality, label, samples, size, imported."""
    from gas.bench.dataset import DatasetError, LocalDataset, find_local

    root = _dest(dest)
    entries = _registry(registry)
    rows: list[dict] = []
    seen: set[Path] = set()
    for entry in entries.values():
        path = entry.path_under(root)
        row = {
            "name": entry.name,
            "modality": entry.modality.value,
            "label": entry.label.value,
            "source": entry.source,
            "registered": True,
            "imported": False,
            "samples": None,
            "size_bytes": None,
            "path": str(path),
            "error": None,
        }
        if (path / "manifest.parquet").is_file():
            seen.add(path.resolve())
            try:
                ds = LocalDataset(path, name=entry.name)
                row.update(imported=True, samples=len(ds), size_bytes=ds.size_bytes())
            except DatasetError as e:
                row["error"] = str(e)
        rows.append(row)
    for path in find_local(root):
        if path.resolve() in seen:
            continue
        row = {"name": path.name, "modality": None, "label": None, "source": "(unregistered)", "registered": False,
               "imported": True, "samples": None, "size_bytes": None, "path": str(path), "error": None}
        try:
            ds = LocalDataset(path)
            labels = sorted(lb.value for lb in ds.labels)
            row.update(name=ds.name, modality=ds.modality.value, label="+".join(labels), samples=len(ds),
                       size_bytes=ds.size_bytes())
        except DatasetError as e:
            row["error"] = str(e)
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Datasets ({root})")
    table.add_column("name", no_wrap=True)
    for col, justify in (("modality", "left"), ("label", "left"), ("samples", "right"), ("size", "right"),
                         ("imported", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("source", overflow="fold")
    for r in rows:
        imported = "[red]broken[/red]" if r["error"] else ("[green]yes[/green]" if r["imported"] else "no")
        table.add_row(
            r["name"], r["modality"] or "?", r["label"] or "?",
            "" if r["samples"] is None else str(r["samples"]),
            "" if r["size_bytes"] is None else _size(r["size_bytes"]),
            imported, r["source"],
        )
    console = Console()
    console.print(table)
    for r in rows:
        if r["error"]:
            console.print(f"[red]{r['name']}[/red]: {r['error']}", markup=True, highlight=False)


# --------------------------------------------------------------------------------------------------
# verify
@app.command()
def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Dataset names (default: every dataset on disk).")] = None,
    dest: DestOpt = None,
) -> None:
    """Re-hash every file of the datasets and compare with the manifest (exit 1 on any mismatch)."""
    from gas.bench.dataset import DatasetError, LocalDataset, find_local

    root = _dest(dest)
    paths = [root / n for n in names] if names else list(find_local(root))
    if not paths:
        raise _fail(f"no datasets under {root}")
    bad_total = 0
    for path in paths:
        try:
            ds = LocalDataset(path)
        except DatasetError as e:
            raise _fail(str(e)) from None
        bad = [s for s in ds.samples() if not ds.verify(s)]
        bad_total += len(bad)
        typer.echo(f"{ds.name}: {len(ds) - len(bad)}/{len(ds)} ok")
        for s in bad[:10]:
            typer.echo(f"  mismatch or missing: {s.path}", err=True)
    if bad_total:
        raise typer.Exit(EXIT_ERROR)
