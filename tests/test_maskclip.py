"""MaskCLIP dense maps, and the proposal seam they go through."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import carlib
from carlib.car import CaR
from carlib.maskclip import compute_maskclip, dense_probabilities
from carlib.proposals import GradCamProposals, MaskClipProposals, ProposalMaps, ProposalStage
from carlib.settings import CarSettings
from carlib.towers import Trunk
from carlib.towers.attention import value_path

IMAGE = np.random.default_rng(2).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def small() -> carlib.ClipBundle:
    return carlib.load_clip("ViT-S-32", device="cpu", seed=4)


def test_dense_probabilities_by_hand():
    patches = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # two queries, one background word
    probabilities = dense_probabilities(patches, texts, num_queries=2, logit_scale=10.0)
    # patch 0: logits 10, 0, 6; patch 1: logits 0, 10, 8.
    first = [math.exp(10), math.exp(0), math.exp(6)]
    second = [math.exp(0), math.exp(10), math.exp(8)]
    expected = [[first[0] / sum(first), second[0] / sum(second)], [first[1] / sum(first), second[1] / sum(second)]]
    np.testing.assert_allclose(probabilities.numpy(), expected, rtol=1e-6)
    assert probabilities.shape == (2, 2)


def _tokens_before_last_block(bundle: carlib.ClipBundle, pixels: torch.Tensor) -> torch.Tensor:
    tokens, _ = bundle.tower.run_all(pixels, stop=bundle.num_layers - 1)
    return tokens


def test_patch_embeddings_are_the_value_path_then_ln_post_and_projection(small):
    visual = small.model.visual
    pixels = carlib.images.proposal_input(IMAGE, small.patch_size, small.mean, small.std)
    with torch.no_grad():
        tokens = _tokens_before_last_block(small, pixels)
        got = small.tower.dense_embeddings(Trunk(tokens, (2, 3), None))
        # The same by hand from the parameters: ln_1, value rows of in_proj, out_proj, ln_post, proj.
        last = visual.transformer.resblocks[-1]
        width = last.attn.embed_dim

        def layer_norm(x, norm):
            mean = x.mean(-1, keepdim=True)
            variance = ((x - mean) ** 2).mean(-1, keepdim=True)
            return (x - mean) / torch.sqrt(variance + norm.eps) * norm.weight + norm.bias

        x = layer_norm(tokens[0, 1:], last.ln_1)
        values = x @ last.attn.in_proj_weight[2 * width:].T + last.attn.in_proj_bias[2 * width:]
        out = values @ last.attn.out_proj.weight.T + last.attn.out_proj.bias
        expected = torch.nn.functional.normalize(layer_norm(out, visual.ln_post) @ visual.proj, dim=-1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert got.shape == (2 * 3, visual.proj.shape[1])  # 64 x 96 at patch 32: a 2 x 3 grid


def test_value_path_of_open_clips_own_attention_equals_multihead_attention():
    from open_clip.transformer import Attention

    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    custom = Attention(32, num_heads=4)
    with torch.no_grad():
        custom.in_proj_weight.copy_(reference.in_proj_weight)
        custom.in_proj_bias.copy_(reference.in_proj_bias)
        custom.out_proj.load_state_dict(reference.out_proj.state_dict())
        tokens = torch.randn(1, 7, 32)
        torch.testing.assert_close(value_path(custom, tokens), value_path(reference, tokens))
        # One token attending only to itself is exactly what the module computes for a single token.
        single = tokens[:, :1]
        torch.testing.assert_close(value_path(reference, single), reference(single, single, single)[0])
    with pytest.raises(NotImplementedError, match="value path"):
        value_path(torch.nn.Linear(3, 3), tokens)


def test_compute_maskclip_maps_and_attention(small):
    result = compute_maskclip(small, IMAGE, ["cat", "dog"], ["sky", "grass"])
    assert result.grid == (2, 3) and result.cams.shape == result.raw_cams.shape == (2, 2, 3)
    assert result.attention.shape == (6, 6)
    assert (result.raw_cams >= 0).all() and (result.raw_cams.sum(axis=0) <= 1 + 1e-6).all()
    np.testing.assert_allclose(result.cams.reshape(2, -1).max(axis=1), 1.0)
    np.testing.assert_allclose(result.scores, result.raw_cams.reshape(2, -1).mean(axis=1), rtol=1e-6)
    assert not result.used_fallback.any() and result.upsampled().shape == (2, 64, 96)
    # Background words compete in each patch's softmax, as they do in Grad-CAM's target.
    alone = compute_maskclip(small, IMAGE, ["cat", "dog"])
    assert (alone.raw_cams.sum(axis=0) > result.raw_cams.sum(axis=0)).all()
    # The attention is the one Grad-CAM's pass reads for CLIP-ES (same blocks, same input).
    np.testing.assert_allclose(result.attention, carlib.compute_cams(small, IMAGE, ["cat"]).attention, atol=1e-6)


class FixedMaps:
    """A proposal stage of our own: a left-half mask for the first text, a right-half one for the rest."""

    def __init__(self):
        self.calls = []

    def propose(self, image, texts, settings):
        self.calls.append(list(texts))
        maps = np.zeros((len(texts), *image.shape[:2]), dtype=np.float32)
        maps[0, :, : image.shape[1] // 2] = 1.0
        maps[1:, :, image.shape[1] // 2:] = 1.0
        return ProposalMaps(cams=maps, proposals=maps)


def test_a_proposal_stage_of_ones_own_goes_through_the_seam(small):
    stage = FixedMaps()
    assert isinstance(stage, ProposalStage)
    settings = CarSettings(post="none", confidence_threshold=0.0, recurrent=False)
    result = CaR(None, small, settings, proposals=stage).segment(IMAGE, ["cat", "dog"])
    assert stage.calls == [["cat", "dog"]]
    assert result.masks[0, :, :48].all() and not result.masks[0, :, 48:].any()
    assert result.masks[1, :, 48:].all() and not result.masks[1, :, :48].any()


def test_the_proposal_method_setting_picks_the_stage(small):
    settings = CarSettings(post="none", recurrent=False, background=("sky",))
    car = CaR(small, small, settings.replace(proposal_method="maskclip"))
    assert isinstance(car.proposal_stage(), MaskClipProposals)
    assert isinstance(car.proposal_stage(settings), GradCamProposals)
    trace = car.segment(IMAGE, ["cat", "dog"]).steps[0]
    expected = compute_maskclip(small, IMAGE, ["cat", "dog"], ["sky"])
    np.testing.assert_allclose(trace.cams, expected.upsampled(), atol=1e-6)
    refined = carlib.clip_es_refine(expected.cams, expected.attention, threshold=settings.clipes_threshold,
                                    output_size=expected.image_size)
    np.testing.assert_allclose(trace.proposals, refined, atol=1e-6)
    gradcam = CaR(small, small, settings).segment(IMAGE, ["cat", "dog"]).steps[0]
    assert np.abs(gradcam.cams - trace.cams).max() > 1e-2
    with pytest.raises(ValueError, match="proposal_method"):
        settings.replace(proposal_method="sift")
