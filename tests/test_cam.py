"""Grad-CAM on CLIP, checked against the independent `grad-cam` package."""

from __future__ import annotations

import copy
import gc
import math

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import carlib
from carlib.cam import compute_cams
from carlib.images import proposal_input
from carlib.text import BACKGROUND_TEMPLATE, encode_texts
from carlib.towers.positions import interpolate_positional_embedding

QUERIES = ["a cat", "a dog", "a red car", "the sky"]
BACKGROUND = ["grass", "wall"]


class _ScoresModel(torch.nn.Module):
    """CLIP as a plain classifier over [queries; background] for pytorch-grad-cam.

    It runs open_clip's own ``encode_image`` with the positional embedding
    swapped for one on the input's grid and ``pool_type="avg"`` (patch-token
    mean), so the forward path is open_clip's code, not carlib's.
    """

    def __init__(self, clip: torch.nn.Module, texts: torch.Tensor, grid: tuple[int, int]):
        super().__init__()
        self.clip = clip
        self.texts = texts
        visual = clip.visual
        self._saved = (visual.positional_embedding, visual.pool_type)
        visual.positional_embedding = torch.nn.Parameter(
            interpolate_positional_embedding(visual.positional_embedding.detach(), grid)
        )
        visual.pool_type = "avg"

    def restore(self) -> None:
        self.clip.visual.positional_embedding, self.clip.visual.pool_type = self._saved

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        image = torch.nn.functional.normalize(self.clip.encode_image(pixels), dim=-1)
        return (self.clip.logit_scale.exp() * image @ self.texts.T).softmax(dim=-1)


class _GridGradCAM(GradCAM):
    """GradCAM returning maps at the patch grid, where carlib's CAMs live before resizing."""

    def __init__(self, *args, grid: tuple[int, int], **kwargs):
        super().__init__(*args, **kwargs)
        self._grid = grid

    def get_target_width_height(self, input_tensor):
        return self._grid[1], self._grid[0]


class _CenteredGridGradCAM(_GridGradCAM):
    """The package's Grad-CAM weights applied to activations centred over the grid (``center_features``)."""

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth=False):
        activations = activations - activations.mean(axis=(2, 3), keepdims=True)
        return super().get_cam_image(input_tensor, target_layer, targets, activations, grads, eigen_smooth)


def _reference_cams(bundle, image, queries, background, grid_only: bool, centered: bool = False):
    texts = torch.cat(
        [encode_texts(bundle, queries), encode_texts(bundle, background, (BACKGROUND_TEMPLATE,))]
    )
    pixels = proposal_input(image, bundle.patch_size, bundle.mean, bundle.std)
    grid = (pixels.shape[2] // bundle.patch_size, pixels.shape[3] // bundle.patch_size)
    wrapper = _ScoresModel(bundle.model, texts, grid)

    def tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 1:, :].reshape(tokens.shape[0], grid[0], grid[1], -1).permute(0, 3, 1, 2)

    cam_class = (_CenteredGridGradCAM if centered else _GridGradCAM) if grid_only else GradCAM
    extra = {"grid": grid} if grid_only else {}
    try:
        with cam_class(
            model=wrapper,
            target_layers=[bundle.model.visual.transformer.resblocks[-1].ln_1],
            reshape_transform=tokens_to_grid,
            **extra,
        ) as reference:
            return np.concatenate(
                [reference(input_tensor=pixels, targets=[ClassifierOutputTarget(i)]) for i in range(len(queries))]
            )
    finally:
        wrapper.restore()


def test_matches_pytorch_grad_cam_on_patch_grid(vit_b16, noise_image):
    ours = compute_cams(vit_b16, noise_image, QUERIES, BACKGROUND, attention_layers=0)
    reference = _reference_cams(vit_b16, noise_image, QUERIES, BACKGROUND, grid_only=True)
    assert ours.cams.shape == (4, 14, 20) == reference.shape
    assert not ours.used_fallback.any()
    np.testing.assert_allclose(ours.cams, reference, atol=1e-5)
    # The maps must differ between queries, or the comparison above proves little.
    assert np.abs(ours.cams[0] - ours.cams[1]).max() > 0.05


def test_centred_features_match_the_package_on_centred_activations(vit_b16, noise_image):
    ours = compute_cams(vit_b16, noise_image, QUERIES, BACKGROUND, attention_layers=0, center_features=True)
    reference = _reference_cams(vit_b16, noise_image, QUERIES, BACKGROUND, grid_only=True, centered=True)
    np.testing.assert_allclose(ours.cams, reference, atol=1e-5)
    plain = compute_cams(vit_b16, noise_image, QUERIES, BACKGROUND, attention_layers=0)
    # Centring only moves where the ReLU cuts, so it must change some maps but not the scores.
    assert np.abs(ours.cams - plain.cams).max() > 0.05
    np.testing.assert_allclose(ours.scores, plain.scores, rtol=1e-6)
    # Cut at the grid's mean evidence: each map is zero on part of the grid and positive elsewhere.
    zero_share = (ours.cams.reshape(len(QUERIES), -1) == 0).mean(axis=1)
    assert ((zero_share > 0.05) & (zero_share < 0.95)).all()


def test_full_resolution_equals_reference_up_to_its_second_normalisation(vit_b16, noise_image):
    ours = carlib.gradcam(vit_b16, noise_image, QUERIES, BACKGROUND)
    reference = _reference_cams(vit_b16, noise_image, QUERIES, BACKGROUND, grid_only=False)
    assert ours.shape == (4, 224, 320) and ours.dtype == np.float32
    # pytorch-grad-cam min-max normalises again after resizing; carlib (like CLIP-ES) does not.
    renormalised = (ours - ours.min(axis=(1, 2), keepdims=True)) / (
        ours.max(axis=(1, 2), keepdims=True) - ours.min(axis=(1, 2), keepdims=True) + 1e-7
    )
    np.testing.assert_allclose(renormalised, reference, atol=1e-4)


def test_batched_equals_one_query_at_a_time(vit_b16, noise_image):
    batched = compute_cams(vit_b16, noise_image, QUERIES, BACKGROUND, attention_layers=0)
    texts_q = encode_texts(vit_b16, QUERIES)
    texts_b = encode_texts(vit_b16, BACKGROUND, (BACKGROUND_TEMPLATE,))
    for index, query in enumerate(QUERIES):
        # One query against the same competitors: the others join the background.
        others = torch.cat([texts_q[:index], texts_q[index + 1 :], texts_b])
        single = compute_cams(
            vit_b16,
            noise_image,
            [query],
            attention_layers=0,
            query_embeddings=texts_q[index : index + 1],
            background_embeddings=others,
        )
        np.testing.assert_allclose(single.cams[0], batched.cams[index], atol=1e-5)
        np.testing.assert_allclose(single.scores[0], batched.scores[index], rtol=1e-5)


def test_output_is_at_the_image_size_for_any_size(vit_b16):
    rng = np.random.default_rng(1)
    for height, width in [(50, 70), (7, 9), (231, 100)]:
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        cams = carlib.gradcam(vit_b16, image, ["a", "b"], ["c"])
        assert cams.shape == (2, height, width)
        assert cams.min() >= 0.0 and cams.max() <= 1.0


def test_class_token_target_differs_from_patch_mean(vit_b16, noise_image):
    patch = compute_cams(vit_b16, noise_image, QUERIES, BACKGROUND, attention_layers=0)
    token = compute_cams(vit_b16, noise_image, QUERIES, BACKGROUND, target="class_token", attention_layers=0)
    assert np.abs(patch.cams - token.cams).max() > 0.05
    with pytest.raises(ValueError, match="unknown CAM target"):
        compute_cams(vit_b16, noise_image, QUERIES, target="mean")


def test_zero_cam_falls_back_to_queries_without_background(vit_b16, noise_image):
    # A background word pointing exactly at the image, with a large logit scale,
    # saturates the softmax: s_c underflows to 0, its gradient and CAM vanish.
    bundle = copy.copy(vit_b16)
    bundle.model = copy.deepcopy(vit_b16.model)
    bundle.model.logit_scale.data.fill_(math.log(400.0))
    pixels = proposal_input(noise_image, bundle.patch_size, bundle.mean, bundle.std)
    wrapper = _ScoresModel(bundle.model, torch.zeros(1, 512), (14, 20))
    with torch.no_grad():
        image_direction = torch.nn.functional.normalize(bundle.model.encode_image(pixels), dim=-1)
    wrapper.restore()
    queries = encode_texts(bundle, ["x", "y"])
    saturated = compute_cams(
        bundle, noise_image, ["x", "y"], attention_layers=0,
        query_embeddings=queries, background_embeddings=image_direction,
    )
    assert saturated.used_fallback.all()
    alone = compute_cams(
        bundle, noise_image, ["x", "y"], attention_layers=0,
        query_embeddings=queries, background_embeddings=queries[:0],
    )
    assert not alone.used_fallback.any()
    assert alone.raw_cams.max() > 0
    np.testing.assert_allclose(saturated.cams, alone.cams, atol=1e-6)


def test_hooks_are_removed_after_many_calls(vit_b16):
    image = np.random.default_rng(2).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)

    def hook_count() -> int:
        return sum(
            len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
            for module in vit_b16.model.modules()
        )

    queries, background = encode_texts(vit_b16, ["a", "b"]), encode_texts(vit_b16, ["c"])
    before = hook_count()
    for _ in range(100):
        compute_cams(vit_b16, image, ["a", "b"], query_embeddings=queries, background_embeddings=background)
    gc.collect()
    assert hook_count() == before == 0


def test_hooks_are_removed_when_the_pass_fails(vit_b16):
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError):
        compute_cams(vit_b16, image, ["a"], query_embeddings=torch.zeros(2, 512))
    assert all(not module._forward_hooks for module in vit_b16.model.modules())


@pytest.mark.parametrize(
    "queries, message",
    [([], "empty"), (["cat", " "], "blank"), (["cat", "cat"], "duplicate"), ("cat", "list of strings")],
)
def test_bad_queries_are_rejected(vit_b16, noise_image, queries, message):
    with pytest.raises(ValueError, match=message):
        carlib.gradcam(vit_b16, noise_image, queries)
