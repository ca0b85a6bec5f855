"""The model registry: what ``models/manifest.toml`` declares and where built files live.

The manifest is read once per :class:`ModelRegistry` and validated as a whole, so that a
typo fails on load with the model and key named, not later on first use. Built files go
to ``<cache>/models/<model>/<variant>.onnx`` (see :func:`glasses_sdk._paths.cache_dir`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from glasses_sdk._exceptions import InvalidConfigError, ModelError, ModelNotBuiltError
from glasses_sdk._paths import cache_dir, models_dir

__all__ = [
    "RECIPES",
    "TASKS",
    "ModelRegistry",
    "ModelSpec",
    "Recipe",
    "VariantSpec",
    "built_dir",
    "default_registry",
]

Recipe = Literal[
    "copy",
    "tflite2onnx",
    "torch-onnx",
    "quantize-static",
    "quantize-dynamic",
    "fuse-activations",
    "fuse-vad",
]
RECIPE_REVISIONS: dict[str, int] = {"fuse-activations": 2}
"""Recipes whose code has changed since their first outputs, by revision: part of the
build stamp, so that ``glasses models build`` rebuilds what an older revision wrote."""

RECIPES: tuple[str, ...] = get_args(Recipe)
"""The build recipes a variant can name."""

TASKS: tuple[str, ...] = ("vad", "faces", "ocr-det", "ocr-cls", "ocr-rec", "embeddings", "wakeword")
"""The tasks a model can serve."""

BUILD_HINT = "run `glasses models build` (or `make test`, which does it)"


def built_dir() -> Path:
    """The folder of built model files (under the cache; not created here)."""
    return cache_dir() / "models"


@dataclass(frozen=True)
class VariantSpec:
    """One buildable file of a model: FP32 as shipped or converted, or a quantized one."""

    name: str
    recipe: Recipe
    source_variant: str | None = None
    calibration: str | None = None
    per_channel: bool = False
    notes: str = ""

    def recipe_key(self) -> dict[str, Any]:
        """What the build depends on besides the source file (stored beside the output)."""
        key: dict[str, Any] = {
            "recipe": self.recipe,
            "from": self.source_variant,
            "calibration": self.calibration,
            "per_channel": self.per_channel,
        }
        if self.recipe in RECIPE_REVISIONS:
            # The rewrite's code changed: outputs built by an older one are rebuilt.
            key["recipe_revision"] = RECIPE_REVISIONS[self.recipe]
        return key


@dataclass(frozen=True)
class ModelSpec:
    """One model of the manifest: its source file, checksum, licence and variants."""

    name: str
    task: str
    package: str
    module: str
    file: str
    sha256: str
    licence: str
    default: str
    variants: Mapping[str, VariantSpec]
    input: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    shipped: str = ""
    """A file under ``models/`` that ships with the SDK (trained here): no package, no
    build; :meth:`ModelRegistry.path` returns it as it is."""

    def variant(self, name: str | None = None) -> VariantSpec:
        """The named variant, or the default one; InvalidConfigError when unknown."""
        chosen = self.default if name is None else name
        try:
            return self.variants[chosen]
        except KeyError:
            raise InvalidConfigError(
                f"model {self.name!r} has no variant {chosen!r}; expected one of "
                f"{', '.join(sorted(self.variants))}"
            ) from None


def _str(table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise InvalidConfigError(f"{where}: expected a non-empty string {key!r}, got {value!r}")
    return value


def _parse_variant(model: str, name: str, table: Mapping[str, Any]) -> VariantSpec:
    where = f"manifest models.{model}.variants.{name}"
    recipe = _str(table, "recipe", where)
    if recipe not in RECIPES:
        raise InvalidConfigError(f"{where}: recipe must be one of {RECIPES}, got {recipe!r}")
    source = table.get("from")
    if recipe.startswith("quantize") and not isinstance(source, str):
        raise InvalidConfigError(f"{where}: a quantize recipe needs 'from' (a variant name)")
    calibration = table.get("calibration")
    if recipe == "quantize-static" and not isinstance(calibration, str):
        raise InvalidConfigError(f"{where}: quantize-static needs 'calibration'")
    return VariantSpec(
        name=name,
        recipe=cast(Recipe, recipe),
        source_variant=source if isinstance(source, str) else None,
        calibration=calibration if isinstance(calibration, str) else None,
        per_channel=bool(table.get("per_channel", False)),
        notes=str(table.get("notes", "")),
    )


def _parse_model(name: str, table: Mapping[str, Any]) -> ModelSpec:
    where = f"manifest models.{name}"
    task = _str(table, "task", where)
    if task not in TASKS:
        raise InvalidConfigError(f"{where}: task must be one of {TASKS}, got {task!r}")
    sha256 = _str(table, "sha256", where).lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise InvalidConfigError(f"{where}: sha256 must be 64 hex digits, got {sha256!r}")
    raw_variants = table.get("variants")
    if not isinstance(raw_variants, dict) or not raw_variants:
        raise InvalidConfigError(f"{where}: expected at least one [variants.<name>] table")
    variants = {v: _parse_variant(name, v, t) for v, t in raw_variants.items()}
    for v in variants.values():
        if v.source_variant is not None and v.source_variant not in variants:
            raise InvalidConfigError(
                f"{where}.variants.{v.name}: 'from' names unknown variant {v.source_variant!r}"
            )
    default = _str(table, "default", where)
    if default not in variants:
        raise InvalidConfigError(f"{where}: default {default!r} is not one of its variants")
    raw_input = table.get("input", {})
    shipped = table.get("shipped", "")
    if not isinstance(shipped, str):
        raise InvalidConfigError(f"{where}: 'shipped' must be a path under models/")
    unpackaged = "-" if shipped else None  # a shipped model has no source package
    return ModelSpec(
        name=name,
        task=task,
        package=_str(table, "package", where, unpackaged),
        module=_str(table, "module", where, unpackaged),
        file=_str(table, "file", where, shipped or None),
        sha256=sha256,
        licence=_str(table, "licence", where),
        default=default,
        variants=variants,
        input=dict(raw_input) if isinstance(raw_input, dict) else {},
        notes=str(table.get("notes", "")),
        shipped=shipped,
    )


class ModelRegistry:
    """The models of one manifest, and the paths of their built files.

    ``ModelRegistry()`` reads the shipped ``models/manifest.toml``; ``build_root``
    overrides where built files are looked for (default :func:`built_dir`).
    """

    def __init__(self, manifest: Path | None = None, *, build_root: Path | None = None) -> None:
        """Read and validate ``manifest`` (default: the shipped one)."""
        self.manifest_path = manifest or models_dir() / "manifest.toml"
        self.build_root = build_root or built_dir()
        try:
            document = tomllib.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"the model manifest is missing: {self.manifest_path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidConfigError(f"{self.manifest_path}: not valid TOML: {exc}") from exc
        models = document.get("models")
        if not isinstance(models, dict) or not models:
            raise InvalidConfigError(f"{self.manifest_path}: expected [models.<name>] tables")
        self.models: dict[str, ModelSpec] = {n: _parse_model(n, t) for n, t in models.items()}

    def __iter__(self) -> Any:
        return iter(self.models.values())

    def get(self, name: str) -> ModelSpec:
        """The model called ``name``; InvalidConfigError naming the known ones otherwise."""
        try:
            return self.models[name]
        except KeyError:
            raise InvalidConfigError(
                f"unknown model {name!r}; expected one of {', '.join(sorted(self.models))}"
            ) from None

    def for_task(self, task: str) -> list[ModelSpec]:
        """The models that serve ``task``, in manifest order."""
        return [m for m in self.models.values() if m.task == task]

    def output_path(self, model: str, variant: str | None = None) -> Path:
        """Where the build writes ``model``'s ``variant`` (default variant when None);
        for a model the SDK ships, its file under ``models/``."""
        spec = self.get(model)
        if spec.shipped:
            return self.manifest_path.parent / spec.shipped
        return self.build_root / spec.name / f"{spec.variant(variant).name}.onnx"

    def path(self, model: str, variant: str | None = None) -> Path:
        """The built file of ``model``'s ``variant``; ModelNotBuiltError when missing.

        A model the SDK ships (``shipped`` in the manifest) is its file under ``models/``.
        """
        spec = self.get(model)
        if spec.shipped:
            shipped = self.manifest_path.parent / spec.shipped
            if not shipped.is_file():
                raise ModelError(f"model {model!r}: its shipped file {shipped} is missing")
            return shipped
        path = self.output_path(model, variant)
        if not path.is_file():
            raise ModelNotBuiltError(
                f"model {model!r} ({self.get(model).variant(variant).name}) is not built: "
                f"{path} does not exist; {BUILD_HINT}"
            )
        return path


_DEFAULT: ModelRegistry | None = None


def default_registry() -> ModelRegistry:
    """The registry of the shipped manifest and the default cache (read once)."""
    global _DEFAULT  # noqa: PLW0603 - a lazily read, process-wide, immutable value
    current = built_dir()
    if _DEFAULT is None or _DEFAULT.build_root != current:
        _DEFAULT = ModelRegistry(build_root=current)
    return _DEFAULT
