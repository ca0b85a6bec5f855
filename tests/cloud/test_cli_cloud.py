"""``glasses cloud keys create|list|revoke`` and ``glasses cloud serve``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from glasses_sdk._cli_cloud import cloud_app

app = typer.Typer()
app.add_typer(cloud_app, name="cloud")


def _env(data_dir: Path) -> dict[str, str]:
    return {"GLASSES_CLOUD_DATA_DIR": str(data_dir)}


def test_keys_create_list_revoke_json(tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(tmp_path)
    created = runner.invoke(
        app,
        [
            "cloud",
            "keys",
            "create",
            "--name",
            "ci",
            "--scope",
            "metrics",
            "--scope",
            "inference",
            "--rate",
            "2",
            "--quota-per-day",
            "100",
            "--json",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    document = json.loads(created.stdout)
    assert document["token"].startswith("gsk_")
    assert document["scopes"] == ["inference", "metrics"]
    assert document["quota_per_day"] == 100
    listed = runner.invoke(app, ["cloud", "keys", "list", "--json"], env=env)
    keys = json.loads(listed.stdout)["keys"]
    assert [k["id"] for k in keys] == [document["id"]]
    assert "token" not in keys[0] and keys[0]["revoked"] is False
    revoked = runner.invoke(app, ["cloud", "keys", "revoke", document["id"], "--json"], env=env)
    assert json.loads(revoked.stdout) == {"id": document["id"], "revoked": True}
    again = runner.invoke(app, ["cloud", "keys", "revoke", document["id"]], env=env)
    assert again.exit_code != 0
    listed = runner.invoke(app, ["cloud", "keys", "list", "--json"], env=env)
    assert json.loads(listed.stdout)["keys"][0]["revoked"] is True


def test_bad_settings_are_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text("[cloud]\nmax_body_bytes = -1\nrate_per_sec = 3\n")
    result = CliRunner().invoke(
        app, ["cloud", "keys", "list", "--config", str(config)], env=_env(tmp_path)
    )
    assert result.exit_code != 0
    message = str(result.exception)
    assert "max_body_bytes" in message and "rate_per_sec: unknown setting" in message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.timeout(60)
def test_serve_starts_uvicorn_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        **_env(tmp_path),
        "GLASSES_CLOUD_BACKENDS": "[]",
        "GLASSES_CLOUD_REQUIRED_BACKENDS": "[]",
    }
    code = "from glasses_sdk._cli_cloud import cloud_app; cloud_app()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the server did not start in 30 s"
                time.sleep(0.1)
        assert response.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr:
            process.stderr.close()


def test_serve_ray_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(tmp_path)
    both = runner.invoke(app, ["cloud", "serve", "--ray", "--workers", "2"], env=env)
    assert both.exit_code != 0
    assert "--workers is for uvicorn" in str(both.exception)
    alone = runner.invoke(app, ["cloud", "serve", "--replicas", "2"], env=env)
    assert alone.exit_code != 0
    assert "--replicas needs --ray" in str(alone.exception)
    inverted = runner.invoke(
        app,
        ["cloud", "serve", "--ray"],
        env={**env, "GLASSES_CLOUD_RAY_MIN_REPLICAS": "4", "GLASSES_CLOUD_RAY_MAX_REPLICAS": "2"},
    )
    assert inverted.exit_code != 0
    assert "ray_min_replicas (4) is over ray_max_replicas (2)" in str(inverted.exception)


def test_ray_deployment_options_follow_the_settings(tmp_path: Path) -> None:
    from glasses_sdk.cloud import load_settings
    from glasses_sdk.cloud._serve import deployment_options, shared_store_warnings

    fixed = load_settings(env={}, data_dir=tmp_path, ray_replicas=3, ray_max_ongoing_requests=5)
    options = deployment_options(fixed)
    assert options["num_replicas"] == 3 and "autoscaling_config" not in options
    assert options["max_ongoing_requests"] == 5
    assert options["health_check_period_s"] == 10.0
    assert len(shared_store_warnings(fixed)) == 2  # 3 replicas on per-process stores
    scaling = load_settings(
        env={},
        data_dir=tmp_path,
        ray_min_replicas=1,
        ray_max_replicas=6,
        ray_target_ongoing_requests=4,
        ray_replica_cpus=2,
        rate_limit_store="redis",
        idempotency_store="redis",
        redis_url="redis://127.0.0.1:6379/0",
    )
    options = deployment_options(scaling)
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 6,
        "target_ongoing_requests": 4.0,
        "upscale_delay_s": 30.0,
        "downscale_delay_s": 600.0,
    }
    assert options["ray_actor_options"] == {"num_cpus": 2.0}
    assert shared_store_warnings(scaling) == []


def test_serve_ray_without_the_extra_names_the_install_command(tmp_path: Path) -> None:
    # The extra is hidden from the interpreter as if it were not installed.
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from glasses_sdk.cloud import load_settings\n"
        "from glasses_sdk.cloud._serve import run\n"
        "try:\n    run(load_settings(env={}, port=0))\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
        "from glasses_sdk.cli import main\n"
        "sys.argv = ['glasses', 'cloud', 'serve', '--ray']\n"
        "main()\n"
    )
    env = {**os.environ, **_env(tmp_path), "GLASSES_CLOUD_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert "MissingDependencyError 'ray' is not installed" in result.stdout
    assert "pip install 'glasses-sdk[serve]'" in result.stdout
    # The command: one line on stderr, exit status 2, no traceback.
    assert result.returncode == 2
    assert "error: 'ray' is not installed" in result.stderr
    assert "Traceback" not in result.stderr
