"""Each package's public face: a sorted ``__all__`` that matches what it exports."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import firmware_bridge
import glasses_sdk


def _public_packages() -> list[str]:
    names = []
    for root in (glasses_sdk, firmware_bridge):
        names.append(root.__name__)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{root.__name__}."):
            last = info.name.rsplit(".", 1)[-1]
            if info.ispkg and not last.startswith("_") and "._" not in info.name:
                names.append(info.name)
    return names


def _exported(module: ModuleType) -> set[str]:
    """Public names bound in the module that are not submodules or typing helpers."""
    out = set()
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        if name in {"annotations", "TYPE_CHECKING"}:
            continue
        out.add(name)
    return out


@pytest.mark.parametrize("name", _public_packages())
def test_all_is_sorted_and_matches_exports(name: str) -> None:
    module = importlib.import_module(name)
    declared = getattr(module, "__all__", None)
    assert declared is not None, f"{name} has no __all__"
    assert list(declared) == sorted(declared), f"{name}.__all__ is not sorted"
    assert len(set(declared)) == len(declared), f"{name}.__all__ has duplicates"
    assert set(declared) == _exported(module), f"{name}.__all__ differs from its exports"


@pytest.mark.parametrize("name", _public_packages())
def test_public_names_are_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no docstring"
    for attr in module.__all__:
        value = getattr(module, attr)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name}.{attr} has no docstring"
