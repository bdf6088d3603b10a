"""``gascli discriminator`` (alias ``d``): scaffold, validate and push detector packages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gascli.commands import bench as _bench
from gascli.commands.settings_view import add_config_command

app = typer.Typer(
    name="discriminator",
    help="Discriminative miner: package, validate and push detector models.",
    no_args_is_help=True,
)
add_config_command(app, "discriminator")

ModalityOpt = Annotated[str, typer.Option("--modality", "-m", help="image, video or audio.")]


def _modality(value: str | None):
    from gas.types import Modality

    if value is None:
        return None
    try:
        return Modality(value.lower())
    except ValueError:
        typer.echo(f"error: --modality must be image, video or audio, got {value!r}", err=True)
        raise typer.Exit(2) from None


@app.command()
def init(
    dest: Annotated[Path, typer.Argument(help="Directory to create the package in (must be empty or new).")],
    modality: ModalityOpt = "image",
    name: Annotated[str | None, typer.Option(help="Model name written to model_config.yaml.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random initial weights (same seed, same bytes).")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a non-empty directory.")] = False,
) -> None:
    """Scaffold a working baseline package (small CNN / 1D-CNN, random weights) to train and replace."""
    from gas.submissions.templates import init_package

    mod = _modality(modality)
    try:
        path = init_package(mod, dest, seed=seed, name=name, overwrite=overwrite)
    except (FileExistsError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{mod.value} package written to {path}")
    typer.echo(f"next: gascli d validate {path}   then   gascli d push --{mod.value}-model {path}")


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="A package: a .zip or a directory.")],
    modality: Annotated[
        str | None, typer.Option("--modality", "-m", help="Submit as this modality (default: the yaml's).")
    ] = None,
    smoke: Annotated[bool, typer.Option("--smoke/--no-smoke", help="Run the sandboxed smoke inference.")] = True,
    allow_unsandboxed: Annotated[
        bool,
        typer.Option("--allow-unsandboxed",
                     help="Run the package's code even where no network isolation is available (unsafe)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON only.")] = False,
) -> None:
    """Run every check (layout, zip safety, files, config, safetensors, static pre-filter) and a
    sandboxed smoke inference on random inputs; report each. Exit 1 when any check fails."""
    from gas.submissions.smoke import smoke_callback
    from gas.submissions.validate import validate_package

    if allow_unsandboxed and not as_json:
        typer.secho("WARNING: --allow-unsandboxed runs untrusted code without network isolation", fg="red",
                    err=True)
    report = validate_package(path, modality=_modality(modality),
                              smoke=smoke_callback(allow_unsandboxed=allow_unsandboxed) if smoke else None)
    try:
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=f"validation of {path}")
            for col in ("check", "result", "time", "detail"):
                table.add_column(col)
            for r in report.results:
                state = "[yellow]skipped[/]" if r.skipped else ("[green]ok[/]" if r.ok else "[red]FAILED[/]")
                detail = "\n".join(r.problems) if r.problems else r.detail
                table.add_row(r.title, state, f"{r.duration_s:.2f}s", detail)
            Console().print(table)
            if report.package is not None:
                typer.echo(f"package sha256 {report.package.sha256}")
            typer.echo("package is valid" if report.ok else "package is NOT valid")
    finally:
        report.cleanup()
    if not report.ok:
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": False})
def push(
    image_model: Annotated[Path | None, typer.Option("--image-model", help="Image detector package.")] = None,
    video_model: Annotated[Path | None, typer.Option("--video-model", help="Video detector package.")] = None,
    audio_model: Annotated[Path | None, typer.Option("--audio-model", help="Audio detector package.")] = None,
    wallet_name: Annotated[str | None, typer.Option("--wallet-name", help="Wallet name [env GAS_WALLET_NAME].")] = None,
    wallet_hotkey: Annotated[str | None, typer.Option("--wallet-hotkey", help="Hotkey [env GAS_WALLET_HOTKEY].")] = None,
    wallet_path: Annotated[Path | None, typer.Option("--wallet-path", help="Wallet dir [env GAS_WALLET_PATH].")] = None,
    network: Annotated[str | None, typer.Option("--network", help="dev, test, finney, ... [env GAS_NETWORK].")] = None,
    netuid: Annotated[int | None, typer.Option("--netuid", help="Subnet id [env GAS_NETUID].")] = None,
    store: Annotated[str | None, typer.Option("--store", help="file://DIR or hf://org/repo [env GAS_MODEL_STORE].")] = None,
    devchain: Annotated[str | None, typer.Option("--devchain", help="Dev chain name [env GAS_DEVCHAIN].")] = None,
    max_wait: Annotated[
        float | None, typer.Option("--max-wait", help="Longest wait for the commitment rate limit (s).")
    ] = None,
) -> None:
    """Validate, upload and commit packages: all modalities in ONE commitment, read back to verify.

    Same flags and behaviour as `python neurons/discriminator/push_model.py`."""
    from neurons.discriminator import push_model

    argv: list[str] = []
    for flag, value in (("--image-model", image_model), ("--video-model", video_model),
                        ("--audio-model", audio_model), ("--wallet-name", wallet_name),
                        ("--wallet-hotkey", wallet_hotkey), ("--wallet-path", wallet_path),
                        ("--network", network), ("--netuid", netuid), ("--store", store),
                        ("--devchain", devchain), ("--max-wait", max_wait)):
        if value is not None:
            argv += [flag, str(value)]
    code = push_model.main(argv)
    if code:
        raise typer.Exit(code)


# The miner's name for `gascli bench run`: same options, same function.
app.command(
    "benchmark",
    help="Benchmark detector packages on local datasets in their sandbox (same as `gascli bench run`).",
)(_bench.run)
