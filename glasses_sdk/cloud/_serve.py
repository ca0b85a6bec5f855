"""``glasses cloud serve --ray``: the same FastAPI app, deployed on Ray Serve (extra ``serve``).

Each replica builds its own app from the same :class:`CloudSettings` (models, key store,
work queue, metrics), through Ray Serve's late-bound ingress
(``__serve_build_asgi_app__``), so nothing unpicklable crosses the cluster; Ray runs the
app's lifespan (backends load there) before the replica takes traffic. From the
settings:

- ``ray_replicas`` fixed replicas, or autoscaling between ``ray_min_replicas`` and
  ``ray_max_replicas`` towards ``ray_target_ongoing_requests`` per replica (with
  ``ray_upscale_delay_s`` / ``ray_downscale_delay_s``);
- ``ray_max_ongoing_requests`` per replica (Ray queues the rest at the proxy; the app's
  own bounded work queue still sheds with 503 behind it);
- ``ray_health_check_period_s`` / ``ray_health_check_timeout_s``: Ray calls
  :meth:`check_health`, which fails while a required backend is not loaded, and
  replaces a replica that fails it;
- the HTTP proxy on ``host``:``port`` (127.0.0.1 unless told otherwise).

A local Ray started here (``ray_address`` unset) keeps its node address on loopback when
``host`` is a loopback address, and so do the replicas' internal gRPC servers, so that
nothing of it listens for other machines (tested). With more than one replica, rate
limits and idempotency records must be in Redis (``rate_limit_store`` /
``idempotency_store``); :func:`shared_store_warnings` says so.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from glasses_sdk._exceptions import MissingDependencyError
from glasses_sdk.cloud._settings import CloudSettings

__all__ = [
    "APP_NAME",
    "REPLICA_HEADER",
    "build_application",
    "deploy",
    "deployment_options",
    "run",
    "shared_store_warnings",
    "shutdown",
]

log = logging.getLogger("glasses_sdk.cloud")

APP_NAME = "glasses-cloud"
"""The Ray Serve application's name (``serve status`` lists it)."""

REPLICA_HEADER = "glasses-replica"
"""Response header naming the replica that answered (for operators and tests)."""


def _serve() -> Any:
    try:
        from ray import serve
    except ImportError:
        raise MissingDependencyError("ray", "serve") from None
    return serve


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def deployment_options(settings: CloudSettings) -> dict[str, Any]:
    """The ``@serve.deployment`` options the settings ask for."""
    options: dict[str, Any] = {
        "name": "GlassesCloud",
        "max_ongoing_requests": settings.ray_max_ongoing_requests,
        "health_check_period_s": settings.ray_health_check_period_s,
        "health_check_timeout_s": settings.ray_health_check_timeout_s,
        "ray_actor_options": {"num_cpus": settings.ray_replica_cpus},
    }
    if settings.ray_max_replicas is not None:
        options["autoscaling_config"] = {
            "min_replicas": settings.ray_min_replicas,
            "max_replicas": settings.ray_max_replicas,
            "target_ongoing_requests": settings.ray_target_ongoing_requests,
            "upscale_delay_s": settings.ray_upscale_delay_s,
            "downscale_delay_s": settings.ray_downscale_delay_s,
        }
    else:
        options["num_replicas"] = settings.ray_replicas
    return options


def shared_store_warnings(settings: CloudSettings) -> list[str]:
    """What goes wrong with several replicas on per-process stores (empty when fine)."""
    most = settings.ray_max_replicas or settings.ray_replicas
    if most <= 1 and settings.ray_address is None:
        return []
    out = []
    if settings.rate_limit_store != "redis":
        out.append(
            "rate_limit_store is 'memory': each replica keeps its own token buckets, so a "
            "key may send its rate once per replica (set rate_limit_store = 'redis')"
        )
    if settings.idempotency_store != "redis":
        out.append(
            "idempotency_store is 'sqlite': replicas on other nodes do not see each "
            "other's records (set idempotency_store = 'redis')"
        )
    return out


class _ReplicaHeader:
    """ASGI middleware: :data:`REPLICA_HEADER` on every HTTP answer. Added to the FastAPI
    app (not wrapped around it), so that Ray still sees a FastAPI app and installs its
    own exception handlers (back-pressure answers 503)."""

    def __init__(self, app: Any, replica: str) -> None:
        self.app = app
        self.value = replica.encode("latin-1", "replace")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (REPLICA_HEADER.encode(), self.value)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged)


def _loopback_deployment(settings: CloudSettings) -> bool:
    return settings.ray_address is None and _is_loopback(settings.host)


def _internal_grpc_on_loopback() -> None:
    """Make this replica's inter-deployment gRPC server listen on loopback only.

    Ray Serve 2.60 binds it to ``[::]:0`` (every interface) with no setting to change
    that; on a deployment that must stay on this machine, the address is rewritten
    before the replica opens it. Runs in the replica, before Serve starts that server.
    Should Ray move or rename the function, the port stays as Ray opens it (protected by
    Ray's token authentication) and a warning says so.
    """
    try:
        from ray.serve._private import replica
    except ImportError:  # pragma: no cover - ray[serve] is here when this runs
        return
    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None:
        log.warning("cannot bind the replica's internal gRPC port to loopback on this Ray")
        return
    if getattr(original, "glasses_loopback", False):
        return

    def on_loopback(server: Any, address: str) -> Any:
        if address.startswith("[::]:"):
            address = "127.0.0.1:" + address.rsplit(":", 1)[1]
        return original(server, address)

    on_loopback.glasses_loopback = True  # type: ignore[attr-defined]
    setattr(replica, "add_port_to_grpc_server", on_loopback)  # noqa: B010 - not exported


def build_application(settings: CloudSettings) -> Any:
    """The bound Ray Serve application (``serve.run`` it, or :func:`deploy`)."""
    serve = _serve()

    @serve.ingress()
    class GlassesCloud:
        """One replica: the fallback server's app, built in the replica."""

        def __init__(self, settings: CloudSettings) -> None:
            self._settings = settings
            self._state: Any = None
            if _loopback_deployment(settings):
                _internal_grpc_on_loopback()

        def __serve_build_asgi_app__(self) -> Any:
            from glasses_sdk.cloud._app import create_app

            app = create_app(self._settings)
            self._state = app.state.glasses
            replica = str(serve.get_replica_context().replica_id.unique_id)
            app.add_middleware(_ReplicaHeader, replica=replica)
            return app

        def check_health(self) -> None:
            """Ray's health check: fails while a required backend is not loaded (Ray then
            replaces the replica). A shared store that does not answer is not a replica
            fault: ``/readyz`` and each request's 503 report it instead."""
            if self._state is None:
                return  # still starting
            status = self._state.backends.status()
            missing = [n for n in self._settings.required_backends if not status[n]["ready"]]
            if missing:
                reasons = "; ".join(f"{n}: {status[n].get('reason', '?')}" for n in missing)
                raise RuntimeError(f"required backends not loaded: {reasons}")

    deployment = serve.deployment(**deployment_options(settings))(GlassesCloud)
    return deployment.bind(settings)


def _loopback_only(settings: CloudSettings) -> None:
    # A local Ray takes this machine's network address as its node address (and its
    # proxy and workers announce it). This variable, read when ray is first imported,
    # makes it take the loopback address instead; it is set before that import.
    if _loopback_deployment(settings):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _init_ray(settings: CloudSettings, **ray_init: Any) -> None:
    _loopback_only(settings)
    _serve()  # the extra's import error, before anything starts
    import ray

    if ray.is_initialized():
        return
    if _loopback_deployment(settings):
        ray_init.setdefault("_node_ip_address", "127.0.0.1")
    if settings.ray_address is None and settings.ray_num_cpus is not None:
        ray_init.setdefault("num_cpus", settings.ray_num_cpus)
    ray_init.setdefault("include_dashboard", False)
    ray.init(address=settings.ray_address, **ray_init)


def deploy(settings: CloudSettings, **ray_init: Any) -> str:
    """Start (or join) Ray, start Serve's HTTP proxy on ``host``:``port`` and deploy the
    app; return its base URL once every replica is up. ``ray_init`` goes to
    ``ray.init`` (e.g. ``num_cpus``, ``_temp_dir``)."""
    for warning in shared_store_warnings(settings):
        log.warning("%s", warning)
    _init_ray(settings, **ray_init)
    serve = _serve()
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{settings.host}:{settings.port}"


def shutdown(settings: CloudSettings | None = None) -> None:
    """Remove the application and disconnect from Ray. A local Ray started here is
    stopped with Serve; on a cluster joined with ``ray_address`` only this application
    is deleted, so that Serve and other applications there keep running."""
    import ray

    serve = _serve()
    try:
        if ray.is_initialized():
            if settings is not None and settings.ray_address is not None:
                serve.delete(APP_NAME)
            else:
                serve.shutdown()
    finally:
        ray.shutdown()


def run(settings: CloudSettings, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Deploy, then block until Ctrl-C or SIGTERM, then shut down cleanly."""
    stop = threading.Event()
    deploying = [True]

    def request_stop(signum: int, _: FrameType | None) -> None:
        log.warning("cloud: %s received, shutting down", signal.Signals(signum).name)
        stop.set()
        if deploying[0]:
            raise KeyboardInterrupt  # out of the deployment's wait, into the finally

    _loopback_only(settings)  # before ray is first imported, which reads it
    _serve()  # a missing extra fails here, before anything needs shutting down
    previous: dict[signal.Signals, Any] = {}

    def install() -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            handler = signal.signal(s, request_stop)
            previous.setdefault(s, handler)

    install()
    try:
        _init_ray(settings)
        install()  # ray.init puts in its own SIGTERM handler (sys.exit): ours again
        url = deploy(settings)
        deploying[0] = False
        if on_ready is not None:
            on_ready(url)
        while not stop.wait(0.5):
            pass
    finally:
        deploying[0] = False
        try:
            shutdown(settings)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
