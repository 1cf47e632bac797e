"""load_clip: real architectures, seeded random weights, local checkpoints, clear failures."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import carlib
from carlib.models import CheckpointError, WeightsNotFoundError, _hub_reachable
from carlib.vit import interpolate_positional_embedding

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
