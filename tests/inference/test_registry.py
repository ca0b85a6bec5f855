"""The manifest, the registry, and the build: checksums, idempotence, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from glasses_sdk._exceptions import (
    ChecksumMismatchError,
    InvalidConfigError,
    ModelBuildError,
    ModelNotBuiltError,
)
from glasses_sdk._paths import models_dir
from glasses_sdk.inference import ModelRegistry, build_models
from glasses_sdk.inference._build import sha256_of


def _manifest_copy(tmp_path: Path, edit: tuple[str, str] | None = None) -> Path:
    text = (models_dir() / "manifest.toml").read_text(encoding="utf-8")
    if edit is not None:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1])
    path = tmp_path / "manifest.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_model_is_complete() -> None:
    registry = ModelRegistry()
    assert {m.task for m in registry} >= {"vad", "faces", "ocr-det", "ocr-rec", "ocr-cls"}
    for spec in registry:
        assert len(spec.sha256) == 64
        assert spec.licence
        assert spec.default in spec.variants
        assert not spec.file.endswith("_sparse.tflite"), "tflite2onnx cannot convert sparse files"


def test_built_files_match_the_registry(registry: ModelRegistry) -> None:
    for spec in registry:
        if spec.shipped:  # trained here and shipped in models/: not built
            continue
        for variant in spec.variants:
            path = registry.path(spec.name, variant)
            assert path.stat().st_size > 10_000
            assert path.with_suffix(".build.json").is_file()


def test_a_second_build_does_nothing(registry: ModelRegistry) -> None:
    records = build_models(install=False)
    assert {r.status for r in records} == {"up-to-date"}


def test_build_is_incremental(registry: ModelRegistry, tmp_path: Path) -> None:
    local = ModelRegistry(_manifest_copy(tmp_path), build_root=tmp_path / "built")
    names = ["silero-vad", "blazeface-short"]
    first = build_models(names, registry=local, install=False)
    assert [r.status for r in first] == ["built"] * 4
    # A missing output is rebuilt, and nothing else.
    local.path("blazeface-short", "int8").unlink()
    again = build_models(names, registry=local, install=False)
    assert [r.status for r in again] == ["up-to-date"] * 3 + ["built"]
    # A damaged output is rebuilt; so is the variant made from it (its input changed).
    fp32 = local.path("blazeface-short", "fp32")
    fp32.write_bytes(fp32.read_bytes()[:-10])
    third = build_models(names, registry=local, install=False)
    assert [r.status for r in third] == ["up-to-date", "up-to-date", "built", "built"]
    assert sha256_of(local.path("silero-vad", "fp32")) == registry.get("silero-vad").sha256


def test_checksum_mismatch_names_file_and_digests(registry: ModelRegistry, tmp_path: Path) -> None:
    good = registry.get("silero-vad").sha256
    bad = "0" * 64
    local = ModelRegistry(_manifest_copy(tmp_path, (good, bad)), build_root=tmp_path / "b")
    with pytest.raises(ChecksumMismatchError) as info:
        build_models(["silero-vad"], registry=local, install=False)
    message = str(info.value)
    assert "silero_vad_openvino_16k.onnx" in message
    assert bad in message
    assert good in message
    assert not (tmp_path / "b" / "silero-vad" / "fp32.onnx").exists()


def test_missing_package_is_named(registry: ModelRegistry, tmp_path: Path) -> None:
    local = ModelRegistry(_manifest_copy(tmp_path), build_root=tmp_path / "b")
    with pytest.raises(ModelBuildError, match="'silero-vad' is not installed"):
        build_models(["silero-vad"], registry=local, install=False, sources=tmp_path / "empty")


def test_missing_file_in_package_is_named(registry: ModelRegistry, tmp_path: Path) -> None:
    edit = ('file = "data/silero_vad_openvino_16k.onnx"', 'file = "data/gone.onnx"')
    local = ModelRegistry(_manifest_copy(tmp_path, edit), build_root=tmp_path / "b")
    with pytest.raises(ModelBuildError, match=r"data/gone\.onnx is missing from package"):
        build_models(["silero-vad"], registry=local, install=False)


def test_not_built_error_says_how_to_build(tmp_path: Path) -> None:
    local = ModelRegistry(build_root=tmp_path)
    with pytest.raises(ModelNotBuiltError, match="glasses models build"):
        local.path("silero-vad")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('task = "vad"', 'task = "sing"'), "task must be one of"),
        (('recipe = "copy"', 'recipe = "magic"'), "recipe must be one of"),
        (('sha256 = "7776b8', 'sha256 = "zz76b8'), "64 hex digits"),
        (('default = "fp32"', 'default = "fp16"'), "default 'fp16'"),
    ],
)
def test_bad_manifest_fails_on_load(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    with pytest.raises(InvalidConfigError, match=expected):
        ModelRegistry(_manifest_copy(tmp_path, edit))


def test_unknown_model_and_variant_are_named() -> None:
    registry = ModelRegistry()
    with pytest.raises(InvalidConfigError, match="unknown model 'nope'"):
        registry.get("nope")
    with pytest.raises(InvalidConfigError, match="no variant 'int4'"):
        registry.output_path("silero-vad", "int4")


def test_build_root_follows_the_cache_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from glasses_sdk.inference import built_dir, default_registry

    monkeypatch.setenv("GLASSES_SDK_CACHE", str(tmp_path))
    assert built_dir() == tmp_path / "models"
    assert default_registry().build_root == tmp_path / "models"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_recognizer_dictionary_is_checked_and_written_into_the_model(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    import onnx

    spec = registry.get("ppocrv5-rec")
    good = str(spec.input["characters_sha256"])
    # The built file carries the dictionary, one entry per line, as rapidocr's v4 file.
    built = onnx.load(str(registry.path("ppocrv5-rec")), load_external_data=False)
    characters = {p.key: p.value for p in built.metadata_props}["character"].split("\n")
    assert len(characters) + 2 == 18385  # plus CTC blank and space: the model's classes
    assert characters[1] == "一"
    # A dictionary whose checksum differs stops the build before anything is written.
    local = ModelRegistry(_manifest_copy(tmp_path, (good, "0" * 64)), build_root=tmp_path / "b")
    with pytest.raises(ChecksumMismatchError, match=r"ppocrv5_dict\.txt") as info:
        build_models(["ppocrv5-rec"], registry=local, install=False)
    assert good in str(info.value)
    assert not (tmp_path / "b" / "ppocrv5-rec" / "fp32.onnx").exists()
