"""The dense methods (MaskCLIP, SCLIP, ClearCLIP, NACLIP): their attention on hand-computed tiny blocks, their
patch embeddings recomputed from a real architecture's parameters, dense_similarity and the proposal stages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import carlib
from carlib.car import CaR
from carlib.cam import CLIP_ES_ATTENTION_LAYERS, run_trunk, trunk_attention
from carlib.dense_methods import (DENSE_METHODS, correlative_attention, dense_patch_embeddings, dense_similarity,
                                  gaussian_neighbourhood, identity_attention, neighbourhood_key_attention,
                                  query_query_attention)
from carlib.maskclip import dense_probabilities, maskclip_result
from carlib.proposals import (PROPOSAL_STAGES, ClearClipProposals, NaclipProposals, SclipProposals)
from carlib.settings import CarSettings
from carlib.text import BACKGROUND_TEMPLATE, encode_texts
from carlib.towers.attention import HeadQueryKey

IMAGE = np.random.default_rng(2).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def small() -> carlib.ClipBundle:
    torch.set_num_threads(2)
    return carlib.load_clip("ViT-S-32", device="cpu", seed=4)


def _softmax(row):
    exps = [math.exp(value) for value in row]
    return [value / sum(exps) for value in exps]


# One head, two tokens, d_head 1, scale 1: q = (1, 0), k = (0, 2).
TINY = HeadQueryKey(query=torch.tensor([[[[1.0], [0.0]]]]), key=torch.tensor([[[[0.0], [2.0]]]]), scale=1.0)


def test_correlative_attention_by_hand():
    # q qᵀ = [[1, 0], [0, 0]], k kᵀ = [[0, 0], [0, 4]]: each row is the sum of two softmaxes.
    expected = [[a + b for a, b in zip(_softmax([1, 0]), _softmax([0, 0]))],
                [a + b for a, b in zip(_softmax([0, 0]), _softmax([0, 4]))]]
    got = correlative_attention(TINY)
    np.testing.assert_allclose(got[0, 0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(got.sum(dim=-1).numpy(), 2.0, rtol=1e-6)


def test_query_query_attention_by_hand():
    np.testing.assert_allclose(query_query_attention(TINY)[0, 0].numpy(), [_softmax([1, 0]), _softmax([0, 0])],
                               rtol=1e-6)


def test_pair_logits_keep_the_modules_scale_and_cosine():
    qkv = HeadQueryKey(query=torch.tensor([[[[3.0, 4.0], [0.0, 2.0]]]]), key=torch.zeros(1, 1, 2, 2))
    # scale None: 1/sqrt(d_head) = 1/sqrt(2)
    np.testing.assert_allclose(qkv.pair_logits(qkv.query, qkv.query)[0, 0].numpy(),
                               [[25 / math.sqrt(2), 8 / math.sqrt(2)], [8 / math.sqrt(2), 4 / math.sqrt(2)]], rtol=1e-6)
    cosine = HeadQueryKey(query=qkv.query, key=qkv.key, scale=10.0, cosine=True)
    np.testing.assert_allclose(cosine.pair_logits(qkv.query, qkv.query)[0, 0].numpy(), [[10, 8], [8, 10]], rtol=1e-6)


def test_gaussian_neighbourhood_by_hand():
    omega = gaussian_neighbourhood((2, 2), std=1.0, num_prefix=1)
    near, diagonal = math.exp(-0.5), math.exp(-1.0)  # distance 1 and sqrt(2), 2σ² = 2
    expected = np.array([[0, 0, 0, 0, 0],
                         [0, 1, near, near, diagonal],
                         [0, near, 1, diagonal, near],
                         [0, near, diagonal, 1, near],
                         [0, diagonal, near, near, 1]])
    np.testing.assert_allclose(omega.numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="std must be positive"):
        gaussian_neighbourhood((2, 2), std=0.0)


def test_neighbourhood_key_attention_by_hand():
    # A 1 x 2 grid, no prefix: Ω = [[1, e^-1/(2·4)], ...] with σ = 2; logits k kᵀ + Ω.
    off = math.exp(-1 / 8)
    got = neighbourhood_key_attention(TINY, (1, 2), 0, std=2.0)[0, 0].numpy()
    np.testing.assert_allclose(got, [_softmax([0 + 1, 0 + off]), _softmax([0 + off, 4 + 1])], rtol=1e-6)


def test_identity_attention_is_the_identity():
    assert torch.equal(identity_attention(TINY)[0, 0], torch.eye(2))


def _layer_norm(x, norm):
    mean = x.mean(-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + norm.eps) * norm.weight + norm.bias


def _by_hand(bundle: carlib.ClipBundle, tokens: torch.Tensor, method: str, grid) -> torch.Tensor:
    """The method's patch embeddings recomputed from the parameters of an OpenAI-style ViT (no carlib code)."""
    visual = bundle.model.visual
    block = visual.transformer.resblocks[-1]
    attn = block.attn
    width, heads = attn.embed_dim, attn.num_heads
    x = tokens[0]  # L x D
    normed = _layer_norm(x, block.ln_1)
    q, k, v = (normed @ attn.in_proj_weight.T + attn.in_proj_bias).split(width, dim=-1)
    split = [t.reshape(x.shape[0], heads, -1).transpose(0, 1) for t in (q, k, v)]  # heads x L x d
    q, k, v = split
    scale = 1 / math.sqrt(width // heads)
    if method == "sclip":
        weights = torch.softmax(q @ q.transpose(1, 2) * scale, -1) + torch.softmax(k @ k.transpose(1, 2) * scale, -1)
    elif method == "clearclip":
        weights = torch.softmax(q @ q.transpose(1, 2) * scale, -1)
    else:  # naclip, σ 5
        rows, cols = np.divmod(np.arange(grid[0] * grid[1]), grid[1])
        omega = np.zeros((x.shape[0], x.shape[0]))
        omega[1:, 1:] = np.exp(-((rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2) / 50.0)
        weights = torch.softmax(k @ k.transpose(1, 2) * scale + torch.from_numpy(omega).float(), -1)
    mixed = (weights @ v).transpose(0, 1).reshape(x.shape[0], width)
    out = mixed @ attn.out_proj.weight.T + attn.out_proj.bias
    if method == "sclip":  # the residual and the MLP stay
        out = x + out
        hidden = _layer_norm(out, block.ln_2) @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias
        hidden = torch.nn.functional.gelu(hidden)  # a GELU build (seeded random weights)
        out = out + hidden @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias
    return torch.nn.functional.normalize(_layer_norm(out[1:], visual.ln_post) @ visual.proj, dim=-1)


@pytest.mark.parametrize("method", ["sclip", "clearclip", "naclip"])
def test_patch_embeddings_equal_a_recomputation_from_the_parameters(small, method):
    assert small.activation == "GELU"
    pixels = carlib.images.proposal_input(IMAGE, small.patch_size, small.mean, small.std)
    trunk = run_trunk(small, pixels, 0)
    got = dense_patch_embeddings(small, trunk, method)
    with torch.no_grad():
        expected = _by_hand(small, trunk.tokens, method, trunk.grid)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)
    assert got.shape == (6, small.embed_dim)
    others = dense_patch_embeddings(small, trunk, "maskclip")
    assert (got - others).abs().max() > 1e-2  # a different method, a different map


def test_dense_similarity_is_the_cosine_of_the_patch_embeddings_with_untemplated_texts(small):
    texts = ["a cat", "a dog", "grass"]
    pixels = carlib.images.proposal_input(IMAGE, small.patch_size, small.mean, small.std)
    trunk = run_trunk(small, pixels, 0)
    embedded = encode_texts(small, texts)
    maps = {}
    for method in DENSE_METHODS:
        maps[method] = dense_similarity(small, IMAGE, texts, method)
        assert maps[method].dtype == np.float32 and maps[method].shape == (3, 2, 3)
        expected = (dense_patch_embeddings(small, trunk, method) @ embedded.T).T.reshape(3, 2, 3)
        np.testing.assert_allclose(maps[method], expected.numpy(), atol=1e-6)
        assert np.abs(maps[method]).max() <= 1.0
    # MaskCLIP's is the stage carlib already had: the value path's patch embeddings.
    np.testing.assert_allclose(maps["maskclip"], (small.tower.dense_embeddings(trunk) @ embedded.T).T.reshape(3, 2, 3),
                               atol=1e-6)
    assert len({round(float(maps[m][0, 0, 0]), 5) for m in DENSE_METHODS}) == 4
    with pytest.raises(ValueError, match="unknown dense method 'sift'.*maskclip, sclip, clearclip, naclip"):
        dense_similarity(small, IMAGE, texts, "sift")


@pytest.mark.parametrize("method", ["sclip", "clearclip", "naclip"])
def test_each_method_is_a_proposal_stage_under_car(small, method):
    settings = CarSettings(post="none", recurrent=False, background=("sky",), proposal_method=method)
    car = CaR(small, small, settings)
    stage = car.proposal_stage()
    assert type(stage) is PROPOSAL_STAGES[method] and stage.method == method
    trace = car.segment(IMAGE, ["cat", "dog"]).steps[0]
    pixels = carlib.images.proposal_input(IMAGE, small.patch_size, small.mean, small.std)
    trunk = run_trunk(small, pixels, 0)
    texts = torch.cat([encode_texts(small, ["cat", "dog"]), encode_texts(small, ["sky"], (BACKGROUND_TEMPLATE,))])
    probabilities = dense_probabilities(dense_patch_embeddings(small, trunk, method), texts, 2,
                                        float(small.logit_scale))
    expected = maskclip_result(probabilities, trunk.grid, (64, 96), None)
    np.testing.assert_allclose(trace.cams, expected.upsampled(), atol=1e-5)
    attention = trunk_attention(small, run_trunk(small, pixels, CLIP_ES_ATTENTION_LAYERS), CLIP_ES_ATTENTION_LAYERS)
    refined = carlib.clip_es_refine(expected.cams, attention,
                                    threshold=settings.clipes_threshold, output_size=(64, 96))
    np.testing.assert_allclose(trace.proposals, refined, atol=1e-5)
    plain = CaR(small, small, settings.replace(use_clip_es=False)).segment(IMAGE, ["cat", "dog"]).steps[0]
    np.testing.assert_allclose(plain.proposals, plain.cams)


def test_naclip_std_is_a_setting(small):
    wide = CaR(small, small, CarSettings(post="none", recurrent=False, proposal_method="naclip",
                                         neighbourhood_std=50.0)).segment(IMAGE, ["cat", "dog"]).steps[0]
    narrow = CaR(small, small, CarSettings(post="none", recurrent=False, proposal_method="naclip",
                                           neighbourhood_std=0.5)).segment(IMAGE, ["cat", "dog"]).steps[0]
    assert np.abs(wide.cams - narrow.cams).max() > 1e-3
    with pytest.raises(ValueError, match="neighbourhood_std"):
        CarSettings(neighbourhood_std=0)
    assert {SclipProposals, ClearClipProposals, NaclipProposals} <= set(PROPOSAL_STAGES.values())
