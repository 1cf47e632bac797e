"""load_clip: real architectures, seeded random weights, local checkpoints, clear failures."""

from __future__ import annotations

import json
import logging
import pickle
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import carlib
from carlib.models import CheckpointError, WeightsNotFoundError, _hub_reachable, write_seeded_weights
from carlib.towers.positions import interpolate_positional_embedding

SMALL = "ViT-S-32"  # a real open_clip architecture small enough to save and reload quickly


@pytest.fixture(scope="module")
def small() -> carlib.ClipBundle:
    return carlib.load_clip(SMALL, device="cpu", seed=3)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_random_weights_are_seeded(small):
    again = carlib.load_clip(SMALL, device="cpu", seed=3)
    other = carlib.load_clip(SMALL, device="cpu", seed=4)
    assert _same_weights(small.model, again.model)
    assert not _same_weights(small.model, other.model)


def test_seeding_does_not_touch_the_global_generator():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    carlib.load_clip(SMALL, device="cpu", seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_real_architectures_and_their_patch_sizes(vit_b16):
    assert vit_b16.patch_size == 16 and vit_b16.num_layers == 12
    assert vit_b16.device.type == "cpu" and vit_b16.dtype == torch.float32
    assert not any(p.requires_grad for p in vit_b16.model.parameters())
    large = carlib.load_clip("ViT-L-14", device="cpu")
    assert large.patch_size == 14 and large.num_layers == 24
    assert large.model.visual.transformer.width == 1024
    tokens = large.tokenizer(["a photo of a cat"])
    assert tokens.shape == (1, 77)


@pytest.mark.parametrize("layout", ["safetensors", "openai_state_dict", "open_clip_checkpoint"])
def test_a_checkpoint_path_works_wherever_a_tag_does(small, tmp_path, layout):
    state = {k: v.clone() for k, v in small.model.state_dict().items()}
    if layout == "safetensors":
        path = tmp_path / "model.safetensors"
        save_file(state, str(path))
    elif layout == "openai_state_dict":
        path = tmp_path / "model.pt"
        torch.save({**state, "input_resolution": torch.tensor(224)}, path)
    else:
        path = tmp_path / "epoch_1.pt"
        torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    loaded = carlib.load_clip(SMALL, pretrained=str(path), device="cpu", seed=99)
    assert _same_weights(loaded.model, small.model)
    assert loaded.pretrained == str(path)


def test_checkpoints_never_unpickle_code(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (Path.mkdir, (marker,))

    path = tmp_path / "evil.pt"
    with path.open("wb") as handle:
        pickle.dump({"visual.proj": Payload()}, handle)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        carlib.load_clip(SMALL, pretrained=str(path), device="cpu")
    assert not marker.exists()


def test_corrupt_and_mismatched_checkpoints_are_explained(small, tmp_path):
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        carlib.load_clip(SMALL, pretrained=str(corrupt), device="cpu")
    other = tmp_path / "other.safetensors"
    save_file({k: v.clone() for k, v in small.model.state_dict().items()}, str(other))
    with pytest.raises(CheckpointError, match="does not fit model 'ViT-S-16'"):
        carlib.load_clip("ViT-S-16", pretrained=str(other), device="cpu")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        carlib.load_clip(SMALL, pretrained=str(tmp_path / "missing.pt"), device="cpu")


def test_missing_weights_offline_fail_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path / "weights"))
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as raised:
        carlib.load_clip("ViT-B-16", pretrained="openai", device="cpu")
    assert time.perf_counter() - start < 10
    message = str(raised.value)
    assert "open_clip_model.safetensors" in message
    assert str(tmp_path / "weights" / "ViT-B-16-openai") in message
    assert "CARLIB_WEIGHTS_DIR" in message


def test_unreachable_hub_is_detected_quickly():
    start = time.perf_counter()
    assert not _hub_reachable("no-such-host.invalid", timeout_s=2.0)
    assert time.perf_counter() - start < 5


def test_weights_placed_in_the_weights_dir_are_used(tmp_path, monkeypatch):
    # ViT-B-32's "openai" tag, placed by hand where the error message says.
    source = carlib.load_clip("ViT-B-32", device="cpu", seed=7, quick_gelu=True)
    folder = tmp_path / "ViT-B-32-openai"
    folder.mkdir()
    save_file({k: v.clone() for k, v in source.model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = carlib.load_clip("ViT-B-32", pretrained="openai", device="cpu")
    assert _same_weights(loaded.model, source.model)
    # The openai tag implies QuickGELU, as OpenAI trained with it.
    assert type(loaded.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"


def test_bad_names_tags_devices_and_precisions():
    with pytest.raises(ValueError, match="unknown model name"):
        carlib.load_clip("ViT-B-17")
    with pytest.raises(ValueError, match="unknown pretrained tag"):
        carlib.load_clip("ViT-B-16", pretrained="not-a-tag")
    with pytest.raises(ValueError, match="unknown precision"):
        carlib.load_clip(SMALL, precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            carlib.load_clip(SMALL, precision="fp16")
        with pytest.raises(ValueError, match="CUDA is not available"):
            carlib.load_clip(SMALL, device="cuda")


def test_default_device_is_the_one_that_exists(small):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert carlib.load_clip(SMALL).device.type == expected


def test_bf16_runs_where_supported(noise_image):
    bundle = carlib.load_clip(SMALL, device="cpu", precision="bf16")
    assert bundle.dtype == torch.bfloat16
    cams = carlib.gradcam(bundle, noise_image, ["a", "b"], ["c"])
    assert cams.shape == (2, 224, 320) and cams.dtype.name == "float32"


def test_positional_embedding_interpolation_by_hand():
    # 2x2 grid [[0, 1], [2, 3]] resized to 2x4 (align_corners=False):
    # source columns -0.25, 0.25, 0.75, 1.25 clamp to 0, .25, .75, 1.
    embedding = torch.tensor([[9.0], [0.0], [1.0], [2.0], [3.0]])
    resized = interpolate_positional_embedding(embedding, (2, 4))
    expected = torch.tensor([[v] for v in [9.0, 0, 0.25, 0.75, 1, 2, 2.25, 2.75, 3]])
    torch.testing.assert_close(resized, expected)
    assert interpolate_positional_embedding(embedding, (2, 2)) is embedding


def test_patch_grid_follows_the_input(vit_b16):
    import numpy as np

    for height, width, grid in [(224, 320, (14, 20)), (100, 37, (7, 3)), (5, 5, (1, 1))]:
        image = np.full((height, width, 3), 128, dtype=np.uint8)
        result = carlib.compute_cams(vit_b16, image, ["a"], attention_layers=0)
        assert result.grid == grid


# --- the activation of a checkpoint file -----------------------------------------------------------------------

OPENAI_NAME = "ViT-B-32"  # the smallest architecture with an "openai" tag
OPENAI_REPO_CACHE = "models--timm--vit_base_patch32_clip_224.openai"


@pytest.fixture(scope="module")
def openai_source() -> carlib.ClipBundle:
    """Seeded weights of an OpenAI architecture, built as OpenAI's are: with QuickGELU."""
    return carlib.load_clip(OPENAI_NAME, device="cpu", seed=11, quick_gelu=True)


def _embeddings(bundle: carlib.ClipBundle) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    tokens = bundle.tokenizer(["a photo of a cat", "a clean origami dog."])
    with torch.no_grad():
        return bundle.model.encode_image(pixels), bundle.model.encode_text(tokens)


def _save_hub_file(source: carlib.ClipBundle, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.clone() for k, v in source.model.state_dict().items()}, str(path), metadata={"format": "pt"})
    return path


def _openai_layouts(source: carlib.ClipBundle, root: Path) -> dict[str, Path]:
    state = {k: v.clone() for k, v in source.model.state_dict().items()}
    openai = root / "downloads" / "vit_b32.pt"
    openai.parent.mkdir(parents=True)
    # OpenAI's own state dicts carry these three entries beside the parameters.
    torch.save({**state, "input_resolution": torch.tensor(224), "context_length": torch.tensor(77),
                "vocab_size": torch.tensor(49408)}, openai)
    snapshot = root / "snapshot"
    _save_hub_file(source, snapshot / "open_clip_model.safetensors")
    (snapshot / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 512, "quick_gelu": True}}))
    return {
        "openai_state_dict": openai,
        "weights_dir_layout": _save_hub_file(source, root / "w" / f"{OPENAI_NAME}-openai" / "open_clip_model.safetensors"),
        "hub_cache_layout": _save_hub_file(
            source, root / "hub" / OPENAI_REPO_CACHE / "snapshots" / "0123abc" / "open_clip_model.safetensors"),
        "hub_snapshot_with_config": snapshot / "open_clip_model.safetensors",
    }


def test_openai_checkpoint_files_load_with_quick_gelu_like_the_tag(openai_source, tmp_path, monkeypatch, caplog):
    layouts = _openai_layouts(openai_source, tmp_path)
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tag_image, tag_text = _embeddings(carlib.load_clip(OPENAI_NAME, pretrained="openai", device="cpu"))
    explicit = _embeddings(
        carlib.load_clip(OPENAI_NAME, pretrained=str(layouts["openai_state_dict"]), device="cpu", quick_gelu=True))
    wrong_image, wrong_text = _embeddings(
        carlib.load_clip(OPENAI_NAME, pretrained=str(layouts["openai_state_dict"]), device="cpu", quick_gelu=False))
    # The test can fail: GELU gives other embeddings from the same weights.
    assert (wrong_text - tag_text).abs().max() > 1e-4 and (wrong_image - tag_image).abs().max() > 1e-4
    for layout, path in layouts.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="carlib"):
            inferred = carlib.load_clip(OPENAI_NAME, pretrained=str(path), device="cpu")
        assert inferred.activation == "QuickGELU", (layout, inferred.weights_note)
        image, text = _embeddings(inferred)
        for reference_image, reference_text in ((tag_image, tag_text), explicit):
            torch.testing.assert_close(image, reference_image, atol=1e-6, rtol=0)
            torch.testing.assert_close(text, reference_text, atol=1e-6, rtol=0)
        lines = [record.getMessage() for record in caplog.records if "QuickGELU" in record.getMessage()]
        assert len(lines) == 1 and str(path) in lines[0] and "\n" not in lines[0], layout


def test_a_file_with_no_sign_of_openai_is_gelu_and_says_how_to_change_it(openai_source, tmp_path):
    path = _save_hub_file(openai_source, tmp_path / "my_clip.safetensors")
    bundle = carlib.load_clip(OPENAI_NAME, pretrained=str(path), device="cpu")
    assert bundle.activation == "GELU"
    assert type(bundle.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"
    assert "quick_gelu=True" in bundle.weights_note and "--activation quickgelu" in bundle.weights_note


def test_a_torchscript_archive_is_refused_without_running_it(tmp_path):
    path = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(CheckpointError, match="TorchScript archive") as raised:
        carlib.load_clip(OPENAI_NAME, pretrained=str(path), device="cpu")
    assert "open_clip_model.safetensors" in str(raised.value)


def test_truncated_safetensors_are_explained(openai_source, tmp_path):
    path = _save_hub_file(openai_source, tmp_path / "cut.safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        carlib.load_clip(OPENAI_NAME, pretrained=str(path), device="cpu")


def test_seeded_weights_land_where_the_download_would_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = write_seeded_weights(OPENAI_NAME, "openai", seed=5)
    assert path == tmp_path / f"{OPENAI_NAME}-openai" / "open_clip_model.safetensors"
    loaded = carlib.load_clip(OPENAI_NAME, pretrained="openai", device="cpu")
    assert loaded.seeded_random and "SEEDED RANDOM" in loaded.weights_note and loaded.activation == "QuickGELU"
    assert _same_weights(loaded.model, carlib.load_clip(OPENAI_NAME, device="cpu", seed=5, quick_gelu=True).model)
    assert write_seeded_weights(OPENAI_NAME, "openai", seed=6) == path  # a seeded file may be replaced
    real = carlib.load_clip(OPENAI_NAME, device="cpu", seed=1)
    _save_hub_file(real, path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="holds real weights"):
        write_seeded_weights(OPENAI_NAME, "openai", seed=7)
    assert path.read_bytes() == before
    assert not carlib.load_clip(OPENAI_NAME, pretrained="openai", device="cpu").seeded_random
