"""``verify-c2pa`` and ``init-c2pa``: check media the way validators do, and make a dev signing CA.

``register(app)`` adds both commands to a Typer app (the generator group wires them in). Heavy imports
(c2pa, cryptography, rich) happen inside the commands so ``gascli --help`` stays fast.

Exit codes of ``verify-c2pa``: 0 every file passed, 1 at least one failed, 2 bad usage (a missing
file, a bad trust-anchor file, bad settings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

EXIT_FAILED = 1
EXIT_USAGE = 2

EnvFile = Annotated[
    Path | None,
    typer.Option("--env-file", help="Env file to read instead of the generator's default (.env.gen_miner)."),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo("error: " + " ".join(message.split()), err=True)
    return typer.Exit(code)


def _settings(env_file: Path | None):
    from gas.config import GeneratorSettings, SettingsError, load_settings

    try:
        return load_settings(GeneratorSettings, env_file=env_file)
    except SettingsError as e:
        raise _fail(str(e), EXIT_USAGE) from None


def verify_c2pa_command(
    files: Annotated[list[Path], typer.Argument(help="Media files to check (PNG, JPEG, MP4, ...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of reports only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Include each file's C2PA manifest.")] = False,
    trust_anchor: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust-anchor",
            metavar="PEM",
            help="Extra trust-anchor PEM file or folder (repeatable); added to configs/trust_anchors "
            "and GAS_C2PA_TRUST_ANCHORS.",
        ),
    ] = None,
    env_file: EnvFile = None,
) -> None:
    """Check files' C2PA manifests exactly as validators do: intact, hard-bound, signer chain trusted."""
    from gas.verification.c2pa import TrustAnchorError, anchor_subjects, load_trust_anchors, verify_c2pa

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise _fail(f"no such file: {', '.join(missing)}", EXIT_USAGE)
    settings = _settings(env_file)
    try:
        anchors = load_trust_anchors([*settings.c2pa_trust_anchors, *(trust_anchor or [])])
    except TrustAnchorError as e:
        raise _fail(str(e), EXIT_USAGE) from None
    if not anchors:
        typer.echo(
            "warning: no trust anchors configured, so no signer is trusted; add PEM roots to "
            "configs/trust_anchors/, GAS_C2PA_TRUST_ANCHORS or --trust-anchor",
            err=True,
        )
    results = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise _fail(f"cannot read {path}: {e}", EXIT_USAGE) from None
        results.append((path, verify_c2pa(data, trust_anchors_pem=anchors)))
    failed = sum(not r.passed for _, r in results)
    if as_json:
        typer.echo(json.dumps([{"file": str(p), **r.to_dict(include_manifest=verbose)} for p, r in results], indent=2))
    else:
        _print_table(results, n_anchors=len(anchor_subjects(anchors)), verbose=verbose)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _print_table(results: list, *, n_anchors: int, verbose: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"C2PA verification ({n_anchors} trust anchor{'s' if n_anchors != 1 else ''})")
    for col in ("file", "result", "reason", "model", "signing time", "issuer"):
        table.add_column(col, overflow="fold")
    for path, r in results:
        table.add_row(
            str(path),
            "[green]passed[/]" if r.passed else "[red]failed[/]",
            r.reason,
            r.model_name or "-",
            r.signing_time.isoformat(timespec="seconds") if r.signing_time else "-",
            r.cert_issuer or "-",
        )
    console.print(table)
    if verbose:
        for path, r in results:
            console.print(f"[bold]{path}[/] manifest:")
            if r.manifest:
                console.print_json(json.dumps(r.manifest))
            else:
                console.print("  (none)")


def init_c2pa_command(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write ca.pem, ca.key, signer.pem, signer.key [default: <cache>/c2pa]."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing credentials.")] = False,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="Validity of the signing certificate.")] = 365,
    organization: Annotated[
        str, typer.Option("--organization", help="Organization name in both certificates.")
    ] = "GAS dev",
    env_file: EnvFile = None,
) -> None:
    """Make a development CA and a C2PA signing certificate for the local diffusers service."""
    from gas.generation.c2pa_certs import C2paCertError, init_c2pa

    settings = _settings(env_file)
    out_dir = directory.expanduser() if directory is not None else settings.cache_dir / "c2pa"
    try:
        paths = init_c2pa(out_dir, organization=organization, days=days, overwrite=overwrite)
    except C2paCertError as e:
        raise _fail(str(e), EXIT_FAILED) from None
    typer.echo(f"CA certificate:      {paths.ca_cert}")
    typer.echo(f"CA key:              {paths.ca_key}  (keep it private; not needed by the miner)")
    typer.echo(f"signing chain:       {paths.signer_cert}")
    typer.echo(f"signing key:         {paths.signer_key}  (mode 0600)")
    if (settings.c2pa_cert_path.resolve(), settings.c2pa_key_path.resolve()) != (
        paths.signer_cert.resolve(),
        paths.signer_key.resolve(),
    ):
        typer.echo(
            f"note: the miner's settings point at {settings.c2pa_cert_path} and {settings.c2pa_key_path}; "
            f"set GAS_C2PA_CERT={paths.signer_cert} and GAS_C2PA_KEY={paths.signer_key} to use these."
        )
    typer.echo(
        "next: validators accept this miner's local-model output only if they trust this CA: give them "
        f"{paths.ca_cert} to add as a trust anchor (configs/trust_anchors/, GAS_C2PA_TRUST_ANCHORS or "
        "verify-c2pa --trust-anchor)."
    )


def register(app: typer.Typer) -> None:
    """Add ``verify-c2pa`` and ``init-c2pa`` to ``app``."""
    app.command("verify-c2pa")(verify_c2pa_command)
    app.command("init-c2pa")(init_c2pa_command)
