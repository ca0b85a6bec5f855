"""``glasses emulator`` (the device emulator) and ``glasses pair`` (pair this host).

Mounted by :mod:`glasses_sdk.cli`. The emulator requires pairing unless ``--insecure``:
it logs its pairing code at start (``--code`` fixes it, for scripts), and
``glasses pair tcp://HOST:PORT --code CODE`` pins its certificate in this host's
pairing store (``$GLASSES_PAIRING_DIR``, else ``~/.config/glasses-sdk/pairing``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["emulator_command", "pair_command"]

_log = logging.getLogger("firmware_bridge.emulator")


def _fail(message: str) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(2)


def _default_state_dir() -> Path:
    from firmware_bridge._secure import config_dir

    return config_dir() / "emulator"


def emulator_command(
    *,
    port: Annotated[int, typer.Option("--port", help="TCP port (0: a free one).")] = 7447,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    scenario: Annotated[
        Path | None,
        typer.Option("--scenario", help="Scenario TOML file (default: the shipped one)."),
    ] = None,
    impair: Annotated[
        str | None,
        typer.Option(
            "--impair",
            help="Link impairments, e.g. loss=0.05,corrupt=0.02,dup=0.01,reorder=0.01,"
            "latency_ms=20,jitter_ms=5,kbps=2000,mtu=512,seed=7",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="No pairing, no TLS: for local debugging only."),
    ] = False,
    code: Annotated[
        str | None, typer.Option("--code", help="Use this 6-digit pairing code.")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Where the device identity and paired hosts live."),
    ] = None,
    http_port: Annotated[
        int,
        typer.Option(
            "--http-port",
            help="Port of the testers' page and the MJPEG stream (0: a free one; -1: off).",
        ),
    ] = 0,
    duration_s: Annotated[
        float | None, typer.Option("--duration-s", help="Stop after this many seconds.")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document (address, code) on stdout."),
    ] = False,
) -> None:
    """Run the device emulator: a scenario's camera, microphone and events over TCP."""
    from firmware_bridge._errors import BridgeError
    from firmware_bridge.emulator import (
        Emulator,
        default_scenario_path,
        load_scenario,
        parse_impairment,
    )
    from firmware_bridge.emulator.web import EmulatorWebServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        spec = None if impair is None else parse_impairment(impair)
        loaded = load_scenario(scenario if scenario is not None else default_scenario_path())
    except BridgeError as exc:
        raise _fail(str(exc)) from None
    if code is not None and not (len(code) == 6 and code.isdigit()):
        raise _fail(f"--code must be 6 digits, got {code!r}")
    if insecure:
        _log.warning("=" * 72)
        _log.warning("INSECURE MODE: no pairing, no encryption. Anyone who can reach")
        _log.warning("this port can read the camera and microphone. Debugging only.")
        _log.warning("=" * 72)

    async def run() -> None:
        emulator = Emulator(
            loaded,
            host=host,
            port=port,
            impairment=spec,
            insecure=insecure,
            state_dir=state_dir if state_dir is not None else _default_state_dir(),
            pairing_code=code,
        )
        await emulator.start()
        # The page and stream run in their own threads and read the emulator through its
        # thread-safe view; behind a random URL token unless --insecure.
        web = (
            None
            if http_port < 0
            else EmulatorWebServer(emulator.view(), host=host, port=http_port, insecure=insecure)
        )
        if web is not None:
            web.start()
        info: dict[str, Any] = {
            "address": emulator.address,
            "port": emulator.port,
            "pairing_code": None if insecure else emulator.pairing_code,
            "insecure": insecure,
            "scenario": loaded.name,
            "impairment": emulator.impairment.to_spec(),
            "page_url": None if web is None else web.page_url,
            "stream_url": None if web is None else web.stream_url,
        }
        if as_json:
            sys.stdout.write(json.dumps(info) + "\n")
            sys.stdout.flush()
        else:
            sys.stderr.write(f"emulator listening on {emulator.address}\n")
            if web is not None:
                sys.stderr.write(f"testers' page: {web.page_url}\n")
                sys.stderr.write(f"camera (MJPEG): {web.stream_url}\n")
            if not insecure:
                sys.stderr.write(
                    f"pairing code: {emulator.pairing_code}  "
                    f"(glasses pair {emulator.address} --code {emulator.pairing_code})\n"
                )
        try:
            if duration_s is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration_s)
        finally:
            if web is not None:
                web.close()
            await emulator.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except (BridgeError, OSError) as exc:
        raise _fail(str(exc)) from None


def pair_command(
    uri: Annotated[str, typer.Argument(help="The device, tcp://HOST:PORT.")],
    code: Annotated[str, typer.Option("--code", help="The 6-digit code the device shows.")],
    pairing_dir: Annotated[
        Path | None,
        typer.Option("--pairing-dir", help="Pairing store (default ~/.config/glasses-sdk)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
) -> None:
    """Pair this host with a device: SPAKE2 over the code, then pin its certificate."""
    from firmware_bridge._errors import BridgeError
    from firmware_bridge._secure import PairingStore, pair_tcp
    from firmware_bridge.pairing import fingerprint
    from firmware_bridge.transports import parse_link_uri

    try:
        address = parse_link_uri(uri)
    except BridgeError as exc:
        raise _fail(str(exc)) from None
    if address.scheme != "tcp":
        raise _fail(f"pairing is for tcp:// devices; {address.scheme} links pair in the OS")
    store = PairingStore(pairing_dir) if pairing_dir is not None else PairingStore.default()

    async def run() -> bytes:
        return await pair_tcp(address.host, address.port, code, store.identity())

    try:
        cert = asyncio.run(run())
    except BridgeError as exc:
        raise _fail(str(exc)) from None
    path = store.save_device(f"{address.host}:{address.port}", cert)
    document = {"uri": uri, "device_fingerprint": fingerprint(cert), "pinned": str(path)}
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stderr.write(f"paired with {uri}; device certificate pinned in {path}\n")
