"""The CLI's last line of defence: a GlassesError becomes one clear line and exit 2."""

from __future__ import annotations

import pytest

from glasses_sdk import MissingDependencyError, cli


def test_an_install_hint_keeps_its_brackets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def app() -> None:
        raise MissingDependencyError("ray", "serve")

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "pip install 'glasses-sdk[serve]'" in err
    assert len(err.strip().splitlines()) == 1
