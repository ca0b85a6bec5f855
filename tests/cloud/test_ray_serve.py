"""``glasses cloud serve --ray`` end to end, on a local Ray instance (marked ``ray``: run
this module in its own pytest process).

The real command runs in a subprocess: a local Ray with 2 CPUs and no dashboard, its
node address on loopback, ``HOME`` and Ray's temporary folder in a temporary folder,
Serve's HTTP proxy on a free 127.0.0.1 port, two replicas of the app with the real
BlazeFace backend, and a real redis-server (on a Unix socket) as their shared store.
Through the proxy: ``/healthz``, a 401 without a key, an authenticated
``/v1/vision/faces``, a key's rate limit and an idempotency key that hold across both
replicas; then SIGTERM, and the command must shut Ray down and exit 0.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glasses_sdk import data
from glasses_sdk.cloud import KeyStore, load_settings
from tests.cloud.conftest import auth, redis_server
from tests.conftest import missing, need_data

pytestmark = [pytest.mark.ray, pytest.mark.slow]

START_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)
        return None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # Located, not imported: importing ray.serve here would only add its import-time
    # deprecation warnings to this process (the command imports it).
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("starlette") is None:
        missing("ray[serve] is not installed: pip install 'glasses-sdk[serve]'")
    photo = need_data(lambda: data.photo_path("astronaut"))
    root = tmp_path_factory.mktemp("ray")
    home = root / "home"
    home.mkdir()
    data_dir = root / "data"
    # Ray's sockets live under its temporary folder: keep the path short (108 bytes).
    ray_tmp = Path(tempfile.mkdtemp(prefix="gray-"))
    port = _free_port()
    with redis_server() as redis_url:
        env = {
            **os.environ,
            "HOME": str(home),
            "RAY_TMPDIR": str(ray_tmp),
            "RAY_USAGE_STATS_ENABLED": "0",
            "GLASSES_CLOUD_DATA_DIR": str(data_dir),
            "GLASSES_CLOUD_HOST": "127.0.0.1",
            "GLASSES_CLOUD_PORT": str(port),
            "GLASSES_CLOUD_BACKENDS": "faces",
            "GLASSES_CLOUD_REQUIRED_BACKENDS": "faces",
            "GLASSES_CLOUD_MODEL_THREADS": "1",
            "GLASSES_CLOUD_RATE_LIMIT_STORE": "redis",
            "GLASSES_CLOUD_IDEMPOTENCY_STORE": "redis",
            "GLASSES_CLOUD_REDIS_URL": redis_url,
            "GLASSES_CLOUD_RAY_NUM_CPUS": "2",
            "GLASSES_CLOUD_RAY_REPLICAS": "2",
            "GLASSES_CLOUD_RAY_REPLICA_CPUS": "0.5",
            "GLASSES_CLOUD_RAY_MAX_ONGOING_REQUESTS": "8",
            "GLASSES_CLOUD_RAY_HEALTH_CHECK_PERIOD_S": "2",
        }
        env.pop("GLASSES_CLOUD_CONFIG", None)
        settings = load_settings(env={k: v for k, v in env.items() if k.startswith("GLASSES_")})
        data_dir.mkdir()
        with KeyStore(settings.keys_db) as store:
            token, _ = store.create("ray-test", ["inference"])
            limited, _ = store.create("ray-limited", ["inference"], rate_per_s=0.01, burst=4)
        log_path = root / "serve.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "glasses_sdk.cli", "cloud", "serve", "--ray"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            end = time.monotonic() + START_TIMEOUT_S
            while True:
                # Up when the command says so (its deployment call has returned) and the
                # proxy answers /readyz.
                if "cloud: serving on" in log_path.read_text(errors="replace"):
                    try:
                        ready = httpx.get(f"{url}/readyz", headers=auth(token), timeout=5)
                        if ready.status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                if process.poll() is not None or time.monotonic() > end:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"glasses cloud serve --ray did not come up:\n{tail}")
                time.sleep(0.5)
            yield {
                "url": url,
                "token": token,
                "limited": limited,
                "photo": photo.read_bytes(),
                "process": process,
                "log": log_path,
            }
        finally:
            _stop(process)


def test_health_auth_and_a_real_model_through_the_proxy(deployment: dict[str, Any]) -> None:
    url, token = deployment["url"], deployment["token"]
    assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    anonymous = httpx.post(
        f"{url}/v1/vision/faces", files={"image": ("a.png", deployment["photo"])}, timeout=30
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    answer = httpx.post(
        f"{url}/v1/vision/faces",
        headers=auth(token),
        files={"image": ("a.png", deployment["photo"])},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["width"] == 512 and document["height"] == 512
    assert len(document["faces"]) == 1  # the astronaut
    assert answer.headers["glasses-replica"]
    # The local Ray announced itself on loopback only (no address for other machines).
    log = deployment["log"].read_text(errors="replace")
    assert "proxy 127.0.0.1 -- Proxy starting" in log


def _process_tree(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def _listening(pids: set[int]) -> list[tuple[int, str]]:
    """(pid, local address) of every listening TCP socket the processes hold (Linux)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                out.append((inodes[fields[9]], fields[1]))
    return out


def _is_loopback_hex(address: str) -> bool:
    host = address.split(":", maxsplit=1)[0]
    if len(host) == 8:  # IPv4, little-endian hex: 0100007F is 127.0.0.1
        return host.endswith("7F")
    if host.startswith("0000000000000000FFFF0000"):  # IPv4-mapped IPv6, ::ffff:127.x
        return host.endswith("7F")
    return host == "00000000000000000000000001000000"  # ::1


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_ray_and_the_proxy_listen_on_loopback_only(deployment: dict[str, Any]) -> None:
    tree = _process_tree(deployment["process"].pid)
    assert len(tree) > 3  # the command, Ray's GCS and raylet, workers
    sockets = _listening(tree)
    assert sockets, "no listening socket found under the command's processes"
    port = int(deployment["url"].rsplit(":", 1)[1])
    assert any(int(a.split(":")[1], 16) == port for _, a in sockets)  # the proxy is there
    exposed = [(_name(pid), a) for pid, a in sockets if not _is_loopback_hex(a)]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_rate_limit_and_idempotency_hold_across_replicas(deployment: dict[str, Any]) -> None:
    url, token = deployment["url"], deployment["token"]
    limited = deployment["limited"]
    with httpx.Client(base_url=url, timeout=30) as client:
        # The same idempotency key, sent until both replicas have answered: one ran it,
        # every other answer, from either replica, is its replay.
        replicas: Counter[str] = Counter()
        answers = []
        for _ in range(40):
            r = client.post(
                "/v1/vision/faces",
                headers={**auth(token), "Idempotency-Key": "ray-once"},
                files={"image": ("a.png", deployment["photo"])},
            )
            assert r.status_code == 200, r.text
            replicas[r.headers["glasses-replica"]] += 1
            answers.append(r)
            if len(replicas) == 2 and len(answers) >= 4:
                break
        assert len(replicas) == 2, f"Ray routed every request to one replica: {replicas}"
        assert "idempotent-replayed" not in answers[0].headers
        assert all(a.headers["idempotent-replayed"] == "true" for a in answers[1:])
        assert all(a.json() == answers[0].json() for a in answers[1:])
        other = answers[0].headers["glasses-replica"]
        assert any(a.headers["glasses-replica"] != other for a in answers[1:])

        # A key with a burst of 4 at 0.01/s: 4 answers in all, across both replicas.
        statuses: list[tuple[int, str]] = []
        for _ in range(12):
            r = client.get("/readyz", headers=auth(limited))
            statuses.append((r.status_code, r.headers.get("glasses-replica", "")))
    assert [s for s, _ in statuses].count(200) == 4
    assert [s for s, _ in statuses].count(429) == 8
    assert len({replica for _, replica in statuses}) == 2, statuses


def test_sigterm_shuts_down_cleanly(deployment: dict[str, Any]) -> None:
    process: subprocess.Popen[bytes] = deployment["process"]
    assert _stop(process) == 0, deployment["log"].read_text(errors="replace")[-3000:]
    log = deployment["log"].read_text(errors="replace")
    assert "SIGTERM received, shutting down" in log
    assert "cloud: Ray Serve stopped" in log
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{deployment['url']}/healthz", timeout=5)
