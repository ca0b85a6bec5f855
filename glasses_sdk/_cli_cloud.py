"""The cloud commands of ``glasses``: ``cloud serve`` and ``cloud keys create|list|revoke``.

Mounted by :mod:`glasses_sdk.cli` as ``app.add_typer(cloud_app, name="cloud")``. The
server's modules (FastAPI, uvicorn) are imported inside the commands, so that
``glasses --help`` works without the ``cloud`` extra; a missing extra ends in one line
naming ``pip install 'glasses-sdk[cloud]'``. Settings come from ``--config FILE`` (or
``$GLASSES_CLOUD_CONFIG``) and ``GLASSES_CLOUD_*`` variables, as the server reads them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from glasses_sdk._exceptions import GlassesError, InvalidConfigError, MissingDependencyError

if TYPE_CHECKING:
    from glasses_sdk.cloud import CloudSettings

__all__ = ["cloud_app", "keys_app"]

cloud_app = typer.Typer(help="The cloud fallback server: run it, manage its API keys.")
keys_app = typer.Typer(help="API keys of the fallback server.", no_args_is_help=True)
cloud_app.add_typer(keys_app, name="keys")

_err = Console(stderr=True, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML settings file (default: $GLASSES_CLOUD_CONFIG).",
        dir_okay=False,
    ),
]


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _settings(config: Path | None, **overrides: Any) -> CloudSettings:
    try:
        from glasses_sdk.cloud import load_settings
    except ImportError as exc:
        if isinstance(exc, MissingDependencyError):
            raise
        raise MissingDependencyError(exc.name or "fastapi", "cloud") from None
    return load_settings(config, **overrides)


@cloud_app.command("serve")
def serve(
    *,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default 8000; 0 picks a free one).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes (default 1).")
    ] = None,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Deploy on Ray Serve instead (extra 'serve'): replicas, autoscaling and "
            "health checks from the ray_* settings; Ctrl-C or SIGTERM shuts it down.",
        ),
    ] = False,
    replicas: Annotated[
        int | None,
        typer.Option("--replicas", min=1, help="With --ray: fixed replicas (ray_replicas)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the fallback server with uvicorn, or on Ray Serve with --ray (bound to 127.0.0.1
    unless told otherwise)."""
    if ray and workers is not None:
        raise InvalidConfigError(
            "--workers is for uvicorn; with --ray, set --replicas (or ray_replicas, or "
            "ray_min_replicas/ray_max_replicas for autoscaling)"
        )
    if replicas is not None and not ray:
        raise InvalidConfigError("--replicas needs --ray (uvicorn takes --workers)")
    chosen = {"host": host, "port": port, "workers": workers, "ray_replicas": replicas}
    overrides = {k: v for k, v in chosen.items() if v is not None}
    settings = _settings(config, **overrides)
    if ray:
        _serve_ray(settings)
        return
    import uvicorn

    _err.print(
        f"cloud: serving on http://{settings.host}:{settings.port} "
        f"({settings.workers} worker{'s' if settings.workers > 1 else ''}); "
        f"keys in {settings.keys_db}"
    )
    if settings.workers == 1:
        from glasses_sdk.cloud import create_app

        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            limit_concurrency=settings.max_connections,
        )
        return
    # Several processes: each builds its own app from the same settings, passed down in
    # the environment (rate limits are then per worker; idempotency is shared by SQLite).
    if config is not None:
        os.environ["GLASSES_CLOUD_CONFIG"] = str(config.resolve())
    for name, value in overrides.items():
        os.environ[f"GLASSES_CLOUD_{name.upper()}"] = str(value)
    uvicorn.run(
        "glasses_sdk.cloud:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        limit_concurrency=settings.max_connections,
    )


def _serve_ray(settings: CloudSettings) -> None:
    try:
        from glasses_sdk.cloud import _serve
    except ImportError as exc:
        if isinstance(exc, MissingDependencyError):
            raise
        raise MissingDependencyError(exc.name or "fastapi", "cloud") from None
    for warning in _serve.shared_store_warnings(settings):
        _err.print(f"cloud: warning: {warning}")
    if settings.autoscaling:
        scale = f"{settings.ray_min_replicas}-{settings.ray_max_replicas} replicas (autoscaling)"
    else:
        scale = f"{settings.ray_replicas} replica{'s' if settings.ray_replicas > 1 else ''}"
    where = settings.ray_address or "a local Ray"
    _err.print(f"cloud: deploying on Ray Serve ({where}, {scale}); keys in {settings.keys_db}")

    def ready(url: str) -> None:
        _err.print(f"cloud: serving on {url} through Ray Serve; Ctrl-C stops it")

    _serve.run(settings, on_ready=ready)
    _err.print("cloud: Ray Serve stopped")


@keys_app.command("create")
def keys_create(
    *,
    name: Annotated[str, typer.Option("--name", help="Who or what the key is for.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="inference (default), metrics or admin; repeatable."),
    ] = None,
    rate_per_s: Annotated[
        float | None, typer.Option("--rate", help="Requests per second (default: server's).")
    ] = None,
    burst: Annotated[
        int | None, typer.Option("--burst", help="Bucket size (default: server's).")
    ] = None,
    quota_per_day: Annotated[
        int | None, typer.Option("--quota-per-day", help="Requests per UTC day.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key; its token is printed once and never stored."""
    from glasses_sdk.cloud import KeyStore

    settings = _settings(config)
    with KeyStore(settings.keys_db) as store:
        token, key = store.create(
            name,
            scope or ["inference"],
            rate_per_s=rate_per_s,
            burst=burst,
            quota_per_day=quota_per_day,
        )
    if as_json:
        _print_json({"token": token, **key.to_json()})
        return
    _err.print(f"cloud: created {key.key_id} ({', '.join(key.scopes)}); the token, shown once:")
    sys.stdout.write(token + "\n")


@keys_app.command("list")
def keys_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the keys (ids, names, scopes, limits; never tokens)."""
    from glasses_sdk.cloud import KeyStore

    settings = _settings(config)
    with KeyStore(settings.keys_db) as store:
        keys = store.list()
    if as_json:
        _print_json({"keys": [k.to_json() for k in keys]})
        return
    table = Table("id", "name", "scopes", "rate/s", "burst", "quota/day", "state")
    for k in keys:
        table.add_row(
            k.key_id,
            k.name,
            ",".join(k.scopes),
            "default" if k.rate_per_s is None else f"{k.rate_per_s:g}",
            "default" if k.burst is None else str(k.burst),
            "none" if k.quota_per_day is None else str(k.quota_per_day),
            "revoked" if k.revoked_s is not None else "live",
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from 'keys list').")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: it is refused from the next request on."""
    from glasses_sdk.cloud import KeyStore

    settings = _settings(config)
    with KeyStore(settings.keys_db) as store:
        revoked = store.revoke(key_id)
    if not revoked:
        raise GlassesError(f"no live key has the id {key_id!r} (see 'glasses cloud keys list')")
    if as_json:
        _print_json({"id": key_id, "revoked": True})
    else:
        _err.print(f"cloud: revoked {key_id}")
