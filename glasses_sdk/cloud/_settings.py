"""The server's settings: defaults, then a TOML file, then ``GLASSES_CLOUD_*`` variables.

A TOML file holds the settings at its top level or under a ``[cloud]`` table; every
field can be overridden by the environment variable ``GLASSES_CLOUD_<FIELD>`` (upper
case). Unknown keys, in the file or the environment, are errors: a typo must not fall
back silently to a default. Every problem is reported at once, each line naming the
field, where its value came from, and what was expected.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from glasses_sdk._exceptions import InvalidConfigError
from glasses_sdk._paths import cache_dir

__all__ = ["CONFIG_ENV", "ENV_PREFIX", "BackendName", "CloudSettings", "load_settings"]

ENV_PREFIX = "GLASSES_CLOUD_"
"""Prefix of the environment variables that override settings."""

CONFIG_ENV = "GLASSES_CLOUD_CONFIG"
"""Environment variable naming the TOML settings file (``--config`` wins over it)."""

BackendName = Literal["transcription", "faces", "ocr", "embeddings"]

_MIB = 1024 * 1024


class CloudSettings(BaseModel):
    """Everything the fallback server can be told; units are in the names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    data_dir: Path = Field(default_factory=lambda: cache_dir() / "cloud")
    """Holds ``keys.sqlite3`` and ``idempotency.sqlite3``."""

    max_body_bytes: int = Field(25 * _MIB, ge=1024)
    max_image_side_px: int = Field(8192, ge=16)
    max_image_pixels: int = Field(40_000_000, ge=256)
    max_audio_s: float = Field(300.0, gt=0)

    rate_per_s: float = Field(10.0, gt=0)
    """Default sustained requests per second of a key (its token bucket's refill rate)."""
    burst: int = Field(20, ge=1)
    """Default bucket size of a key: how many requests it may send at once."""

    model_threads: int = Field(2, ge=1, le=256)
    """Model calls that run at once (threads of the work pool)."""
    max_queue: int = Field(16, ge=0, le=100_000)
    """Model calls that may wait for a thread; past this the server answers 503."""
    retry_after_s: int = Field(1, ge=1, le=3600)
    max_connections: int | None = Field(None, ge=1)
    """uvicorn's ``limit_concurrency``: past this many connections it answers 503 before
    the app reads the request (a last guard when the event loop itself is saturated)."""

    idempotency_ttl_s: int = Field(24 * 3600, ge=1)

    rate_limit_store: Literal["memory", "redis"] = "memory"
    """Where the per-key token buckets live: ``memory`` (this process; with several
    workers or replicas each has its own, so a key's rate is per process) or ``redis``
    (one bucket per key shared by every process, needs ``redis_url``)."""
    idempotency_store: Literal["sqlite", "redis"] = "sqlite"
    """Where idempotency records live: ``sqlite`` (a file under ``data_dir``: shared by
    the workers of one machine, not across machines) or ``redis`` (needs ``redis_url``)."""
    redis_url: str | None = None
    """The shared store, e.g. ``redis://10.0.0.5:6379/0``, ``rediss://`` (TLS) or
    ``unix:///run/redis.sock``; a password goes in the URL (``redis://:secret@host``)."""
    redis_key_prefix: str = Field("glasses:", min_length=1, max_length=100)
    """Prefix of every Redis key this server writes (several deployments, one Redis)."""
    redis_timeout_s: float = Field(1.0, gt=0, le=60)
    """Connect and command timeout: a Redis that does not answer costs a request at most
    this long (then 503), never a hung event loop."""

    ray_address: str | None = None
    """``glasses cloud serve --ray``: the Ray cluster to join (``auto`` for the one this
    node belongs to, ``ray://head:10001``); None starts a local Ray on this machine."""
    ray_num_cpus: int | None = Field(None, ge=1, le=4096)
    """CPUs of a local Ray started here (None: all of this machine's); unused with
    ``ray_address``."""
    ray_replicas: int = Field(1, ge=1, le=1024)
    """Replicas of the deployment when autoscaling is off (``ray_max_replicas`` unset)."""
    ray_min_replicas: int = Field(1, ge=0, le=1024)
    """Autoscaling floor (used when ``ray_max_replicas`` is set)."""
    ray_max_replicas: int | None = Field(None, ge=1, le=1024)
    """Autoscaling ceiling; setting it turns autoscaling on."""
    ray_target_ongoing_requests: float = Field(2.0, gt=0, le=10_000)
    """Autoscaling target: requests in flight per replica that it scales towards."""
    ray_upscale_delay_s: float = Field(30.0, ge=0, le=3600)
    ray_downscale_delay_s: float = Field(600.0, ge=0, le=86_400)
    ray_max_ongoing_requests: int = Field(16, ge=1, le=100_000)
    """Requests one replica takes at once; past it Ray queues them at the proxy."""
    ray_replica_cpus: float = Field(1.0, gt=0, le=256)
    """CPUs Ray reserves for each replica (its model threads run inside them)."""
    ray_health_check_period_s: float = Field(10.0, gt=0, le=3600)
    ray_health_check_timeout_s: float = Field(30.0, gt=0, le=3600)

    batching: bool = False
    """Batch concurrent face-detection calls into one model call. Off by default: it is
    not faster on CPU. BlazeFace is mostly compute at one image (about 2.4 ms of CPU per
    128x128 image here), so a batch saves little: with a batch-dynamic copy of the
    graph, 8 images per ``session.run`` cost 1.1-1.4x less CPU per image than
    single-image runs (``python -m benchmarks.bench_cloud --only model-stage``), and the
    server's loop runs the fixed-batch graph image by image anyway; over HTTP the
    per-request JPEG decoding and parsing, which no batch shares, bring the median to
    about 1.1x."""
    embedding_batching: bool = False
    """Batch concurrent ``/v1/embeddings`` requests (up to ``batch_max_size`` requests,
    ``batch_max_wait_ms``) into one MiniLM call of all their texts, sorted by length and
    padded to the longest of each chunk. Off by default: MiniLM FP32 is compute-bound at
    one sentence (about 9 ms of CPU for 13 tokens here), so batching saves only what
    larger matrix products gain: 1.1-1.4x less CPU per sentence at the model stage and
    a median of about 1.2x over HTTP (``benchmarks/bench_cloud.py``, 16 clients, 2
    cores), short of the issue's 2x."""
    batch_max_size: int = Field(8, ge=1, le=256)
    batch_max_wait_ms: float = Field(2.0, ge=0, le=1000)

    upstream_base_url: str | None = None
    """An OpenAI-compatible model server (vLLM, Ollama, llama.cpp), e.g. ``http://127.0.0.1:11434/v1``."""
    upstream_api_key: SecretStr | None = None
    upstream_model: str | None = None
    """Model name sent upstream; None passes the client's through."""
    upstream_timeout_s: float = Field(60.0, gt=0)

    faces_model: Literal["short", "full"] = "short"
    ocr_max_side_px: int = Field(1280, ge=32, le=4096)
    """The text detector's input limit: larger than the device's 640, for small print."""
    ocr_threads: int = Field(1, ge=1, le=64)
    """onnxruntime threads inside one text-reading call. 1 suits a busy server (its
    ``model_threads`` calls already fill the cores); raise it where requests are few and
    each answer's latency matters (the demo's loopback server and ``bench_assistant``'s
    use 2, which its ``describe_scene`` figures include)."""
    backends: tuple[BackendName, ...] = ("transcription", "faces", "ocr", "embeddings")
    """The backends to load at start-up."""
    required_backends: tuple[BackendName, ...] = ("transcription",)
    """``/readyz`` answers 503 while one of these is not loaded."""

    @field_validator("upstream_base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {value!r}")
        return value

    @property
    def autoscaling(self) -> bool:
        """Whether ``--ray`` deploys with autoscaling (``ray_max_replicas`` is set)."""
        return self.ray_max_replicas is not None

    @property
    def keys_db(self) -> Path:
        """The API-key store."""
        return self.data_dir / "keys.sqlite3"

    @property
    def idempotency_db(self) -> Path:
        """The idempotency store."""
        return self.data_dir / "idempotency.sqlite3"


_FIELDS = set(CloudSettings.model_fields)


def _env_value(name: str, raw: str) -> Any:
    # Tuples are written as JSON lists or comma-separated words.
    annotation = CloudSettings.model_fields[name].annotation
    if "tuple" in str(annotation):
        text = raw.strip()
        if text.startswith("["):
            return json.loads(text)
        return [w.strip() for w in text.split(",") if w.strip()]
    return raw


def load_settings(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> CloudSettings:
    """Settings from defaults, the TOML file ``path`` (or ``$GLASSES_CLOUD_CONFIG``), the
    environment, then ``overrides``; raises :class:`InvalidConfigError` listing every
    problem."""
    env = os.environ if env is None else env
    origins: dict[str, str] = {}
    values: dict[str, Any] = {}
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    problems: list[str] = []
    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidConfigError(f"settings file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidConfigError(f"settings file {path} is not valid TOML: {exc}") from None
        table = document.get("cloud", document)
        if not isinstance(table, dict):
            raise InvalidConfigError(f"settings file {path}: [cloud] must be a table")
        for key, value in table.items():
            if key not in _FIELDS:
                problems.append(f"{key}: unknown setting (in {path})")
                continue
            values[key] = value
            origins[key] = f"file {path}"
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV:
            continue
        key = var[len(ENV_PREFIX) :].lower()
        if key not in _FIELDS:
            problems.append(f"{key}: unknown setting (environment variable {var})")
            continue
        try:
            values[key] = _env_value(key, raw)
        except json.JSONDecodeError as exc:
            problems.append(f"{key}: not a JSON list ({exc}) (environment variable {var})")
            continue
        origins[key] = f"environment variable {var}"
    for key, value in overrides.items():
        values[key] = value
        origins[key] = "argument"
    try:
        settings = CloudSettings.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            where = origins.get(key, "default")
            got = error.get("input")
            problems.append(f"{key}: {error['msg']}, got {got!r} (from {where})")
        settings = None
    if problems:
        raise InvalidConfigError("invalid cloud settings:\n  " + "\n  ".join(problems))
    assert settings is not None
    unknown = set(settings.required_backends) - set(settings.backends)
    if unknown:
        raise InvalidConfigError(
            f"required_backends: {sorted(unknown)} are required but not in backends "
            f"{list(settings.backends)}"
        )
    _check_combinations(settings)
    return settings


def _check_combinations(settings: CloudSettings) -> None:
    problems = []
    for name in ("rate_limit_store", "idempotency_store"):
        if getattr(settings, name) == "redis" and settings.redis_url is None:
            problems.append(
                f"{name} is 'redis' but redis_url is not set (e.g. redis://host:6379/0)"
            )
    top = settings.ray_max_replicas
    if top is not None and settings.ray_min_replicas > top:
        problems.append(
            f"ray_min_replicas ({settings.ray_min_replicas}) is over ray_max_replicas ({top})"
        )
    if problems:
        raise InvalidConfigError("invalid cloud settings:\n  " + "\n  ".join(problems))
