"""Bounded memory for large vocabularies: Grad-CAM in chunks of queries, chosen from a memory budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import carlib
from carlib.cam import compute_cams
from carlib.memory import (
    CPU_BUDGET,
    ENVIRONMENT_VARIABLE,
    MIB,
    budget_bytes,
    gradcam_bytes_per_query,
    gradcam_chunk_size,
    gradcam_fixed_bytes,
    items_per_chunk,
    memory_budget,
    set_memory_budget,
)

QUERIES = ["a cat", "a dog", "a red car", "the sky", "grass", "a wooden table", "a lamp"]
BACKGROUND = ["wall", "floor"]


@pytest.fixture(scope="module")
def unchunked(vit_b16):
    image = np.random.default_rng(0).integers(0, 256, size=(224, 320, 3), dtype=np.uint8)
    return image, compute_cams(vit_b16, image, QUERIES, BACKGROUND, attention_layers=0, chunk_size=len(QUERIES))


@pytest.mark.parametrize("chunk", [1, 3, len(QUERIES)])
def test_chunked_grad_cams_equal_the_unchunked_ones(vit_b16, unchunked, chunk):
    image, whole = unchunked
    chunked = compute_cams(vit_b16, image, QUERIES, BACKGROUND, attention_layers=0, chunk_size=chunk)
    # The maps differ between queries, so a chunk mixing up its queries would show.
    assert np.abs(whole.cams[0] - whole.cams[1]).max() > 0.05
    np.testing.assert_array_equal(chunked.scores, whole.scores)
    if chunk == len(QUERIES):
        np.testing.assert_array_equal(chunked.raw_cams, whole.raw_cams)
        return
    # A smaller batch in the backward picks other matrix kernels: the same maps to float32 rounding
    # (measured: 6e-7 on the normalised maps, 4e-7 of each raw map's peak).
    np.testing.assert_allclose(chunked.cams, whole.cams, rtol=0, atol=2e-6)
    peaks = whole.raw_cams.max(axis=(1, 2), keepdims=True)
    assert (np.abs(chunked.raw_cams - whole.raw_cams) <= 2e-6 * peaks).all()
    np.testing.assert_array_equal(chunked.used_fallback, whole.used_fallback)


def test_each_backward_holds_at_most_a_chunk_of_queries(vit_b16, unchunked, monkeypatch):
    image, whole = unchunked
    batches = []
    grad = torch.autograd.grad

    def recording_grad(outputs, inputs, grad_outputs=None, **options):
        batches.append(grad_outputs.shape[0])
        return grad(outputs, inputs, grad_outputs=grad_outputs, **options)

    monkeypatch.setattr(torch.autograd, "grad", recording_grad)
    compute_cams(vit_b16, image, QUERIES, BACKGROUND, attention_layers=0, chunk_size=3)
    assert batches == [3, 3, 1]
    batches.clear()
    # From a budget: room for exactly two queries beyond the fixed part.
    last = vit_b16.model.visual.transformer.resblocks[-1]
    tokens = 14 * 20 + 1
    per_query = gradcam_bytes_per_query(tokens, 768, last.mlp.c_fc.out_features)
    budget = gradcam_fixed_bytes(tokens, last.attn.num_heads) + 2 * per_query + per_query // 2
    with memory_budget(budget / MIB):
        assert gradcam_chunk_size(vit_b16, tokens, len(QUERIES)) == 2
        budgeted = compute_cams(vit_b16, image, QUERIES, BACKGROUND, attention_layers=0)
    assert batches == [2, 2, 2, 1]
    np.testing.assert_allclose(budgeted.cams, whole.cams, rtol=0, atol=2e-6)


def test_the_all_zero_fallback_is_chunked_too():
    # A background word pointing exactly at the image, under a saturating logit scale, drives every
    # query's score, gradient and CAM to zero, so every map comes from the retry without background.
    import copy
    import math

    from carlib.cam import run_trunk
    from carlib.images import proposal_input
    from carlib.text import encode_texts

    shapes = copy.copy(carlib.load_clip("shapes"))
    shapes.model = copy.deepcopy(shapes.model)
    shapes.model.logit_scale.data.fill_(math.log(200.0))
    image = np.random.default_rng(4).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        trunk = run_trunk(shapes, proposal_input(image, shapes.patch_size, shapes.mean, shapes.std), 0)
        embedding = shapes.tower.cam_forward(trunk, "patch_mean").embedding
        direction = torch.nn.functional.normalize(embedding, dim=-1)
    queries = ["orange", "lemon", "kite", "tent"]  # close to one another: the retry's softmax does not saturate
    embedded = encode_texts(shapes, queries)
    options = dict(attention_layers=0, query_embeddings=embedded, background_embeddings=direction.float())
    whole = compute_cams(shapes, image, queries, chunk_size=len(queries), **options)
    assert whole.used_fallback.all()
    for chunk in (1, 3):
        chunked = compute_cams(shapes, image, queries, chunk_size=chunk, **options)
        assert chunked.used_fallback.all()
        np.testing.assert_allclose(chunked.cams, whole.cams, rtol=0, atol=2e-6)
    alone = compute_cams(shapes, image, queries, chunk_size=len(queries), attention_layers=0, query_embeddings=embedded,
                         background_embeddings=embedded[:0])
    np.testing.assert_allclose(whole.cams, alone.cams, rtol=0, atol=2e-6)
    assert (alone.raw_cams.max(axis=(1, 2)) > 1e-20).all()  # real maps, not zeros or denormals


def test_chunk_arithmetic():
    assert items_per_chunk(10, 100, 35) == 3
    assert items_per_chunk(10, 2, 1000) == 2  # never more than there are
    assert items_per_chunk(10, 100, 5) == 1  # never fewer than one
    # ViT-B/16 at 512 x 512 (1025 tokens, width 768, MLP 3072): 43 MB a query, 50 MB fixed.
    assert gradcam_bytes_per_query(1025, 768, 3072) == 4 * 1025 * (6 * 768 + 2 * 3072)
    assert gradcam_fixed_bytes(1025, 12) == 4 * 12 * 1025 * 1025


def test_budget_precedence(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert budget_bytes("cpu") == CPU_BUDGET == 1024 * MIB
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "300")
    assert budget_bytes("cpu") == 300 * MIB
    with memory_budget(64):
        assert budget_bytes("cpu") == 64 * MIB
        with memory_budget(None):
            assert budget_bytes("cpu") == 300 * MIB
        assert budget_bytes("cpu") == 64 * MIB
    assert budget_bytes("cpu") == 300 * MIB
    set_memory_budget(128)
    try:
        assert budget_bytes("cpu") == 128 * MIB
    finally:
        set_memory_budget(None)
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "lots")
    with pytest.raises(ValueError, match=f"\\${ENVIRONMENT_VARIABLE} must be a positive number of MiB"):
        budget_bytes("cpu")
    for bad in (0, -5, float("nan"), "x", True):
        with pytest.raises(ValueError, match="positive number of MiB"):
            set_memory_budget(bad)


def test_a_large_vocabulary_runs_in_chunks_through_the_proposal_stage():
    # 150 ADE-847 names through CaR's proposal stage (Grad-CAM, CLIP-ES, resizing) with a budget of
    # 7 queries per backward: the maps equal the unchunked stage's.
    from carlib.presets import get_preset
    from carlib.proposals import GradCamProposals

    shapes = carlib.load_clip("shapes")
    image = np.random.default_rng(3).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    names = list(get_preset("ade847").vocabulary.queries[:150])
    settings = get_preset("shapes").settings
    tokens = 6 * 8 + 1
    last = shapes.model.visual.transformer.resblocks[-1]
    width = shapes.model.visual.transformer.width
    budget = gradcam_fixed_bytes(tokens, last.attn.num_heads) + 7 * gradcam_bytes_per_query(tokens, width, 4 * width)
    with memory_budget(budget / MIB):
        assert gradcam_chunk_size(shapes, tokens, len(names)) == 7
        chunked = GradCamProposals(shapes).propose(image, names, settings)
    with memory_budget(1e9):
        whole = GradCamProposals(shapes).propose(image, names, settings)
    assert chunked.cams.shape == chunked.proposals.shape == (150, 48, 64)
    np.testing.assert_allclose(chunked.cams, whole.cams, rtol=0, atol=2e-6)
    np.testing.assert_allclose(chunked.proposals, whole.proposals, rtol=0, atol=1e-5)
    assert np.abs(whole.cams[0] - whole.cams[1]).max() > 0.01


def test_prompted_images_are_drawn_on_demand():
    from carlib.prompts import PromptedImages, apply_visual_prompts

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    proposals = rng.random((4, 40, 50)).astype(np.float32)
    lazy = PromptedImages(image, proposals, 0.6, ("circle", "blur"), blur_kernel=7)
    assert len(lazy) == 4 and lazy.drawn == 0
    expected = [apply_visual_prompts(image, proposal > 0.6, ("circle", "blur"), blur_kernel=7) for proposal in proposals]
    np.testing.assert_array_equal(lazy[1], expected[1])
    np.testing.assert_array_equal(lazy[-1], expected[3])
    np.testing.assert_array_equal(np.stack(lazy[1:3]), np.stack(expected[1:3]))
    assert [np.array_equal(a, b) for a, b in zip(lazy, expected)] == [True] * 4
    assert lazy.drawn == 2 + 2 + 4 and lazy.seconds > 0
    with pytest.raises(IndexError):
        lazy[4]


def test_the_classifier_reads_each_prompted_image_once_and_batches_as_before():
    from carlib.classifier import MaskClassifier
    from carlib.prompts import PromptedImages

    shapes = carlib.load_clip("shapes")
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    proposals = rng.random((7, 48, 64)).astype(np.float32)
    proposals[5] = proposals[2]  # a repeated prompt is encoded once and reused
    lazy = PromptedImages(image, proposals, 0.5, ("blur",), blur_kernel=5)
    drawn = list(PromptedImages(image, proposals, 0.5, ("blur",), blur_kernel=5))
    streaming = MaskClassifier(shapes, batch_size=3)
    embedded = streaming.image_embeddings(lazy)
    assert lazy.drawn == 7  # each image drawn once, never all held
    assert streaming.passes["images"] == 6 and streaming.passes["reused"] == 1
    # Reference: every picture encoded alone, in its own batch of one.
    alone = MaskClassifier(shapes, batch_size=1)
    reference = torch.cat([alone.image_embeddings([picture]) for picture in drawn])
    np.testing.assert_allclose(embedded.numpy(), reference.numpy(), atol=1e-5)
    np.testing.assert_array_equal(embedded[5].numpy(), embedded[2].numpy())
    # The same batches as a list of drawn images gives: identical embeddings.
    listed = MaskClassifier(shapes, batch_size=3).image_embeddings(drawn)
    np.testing.assert_array_equal(embedded.numpy(), listed.numpy())
