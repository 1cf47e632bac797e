"""Work done once: per-image proposal work, text embeddings and prompted images are reused, with identical results.

The references here recompute everything on every call with the public
one-shot functions (``compute_cams``, ``clip_es_refine``, ``compute_maskclip``,
a fresh classifier, ``encode_text`` over the full 77-token context), so a
cache that returned stale or mismatched work would show up as a difference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import carlib
from carlib.cam import CLIP_ES_ATTENTION_LAYERS, compute_cams
from carlib.car import CaR
from carlib.classifier import MaskClassifier
from carlib.clip_es import clip_es_refine
from carlib.maskclip import compute_maskclip
from carlib.proposals import GradCamProposals, MaskClipProposals, ProposalMaps
from carlib.settings import CarSettings
from carlib.text import BACKGROUND_TEMPLATE, TextEmbeddingCache, encode_texts, encode_tokens

IMAGE = np.random.default_rng(11).integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
QUERIES = ["cat", "a red car", "tree", "the sky above the hills", "dog"]


@pytest.fixture(scope="module")
def small() -> carlib.ClipBundle:
    return carlib.load_clip("ViT-S-32", device="cpu", seed=3)


class RecomputingProposals:
    """The proposal stage as it was before reuse: every call runs the whole ViT again.

    It takes its text embeddings from ``texts`` (the stage under test's cache), so the comparison
    isolates the per-image reuse; the embeddings themselves are checked against ``encode_text`` below.
    """

    def __init__(self, bundle, method: str, texts: TextEmbeddingCache):
        self.bundle, self.method, self.texts = bundle, method, texts

    def propose(self, image, texts, settings):
        layers = CLIP_ES_ATTENTION_LAYERS if settings.use_clip_es else 0
        background = self.texts.embed(settings.background, BACKGROUND_TEMPLATE)
        groups = [list(texts)] if settings.mode == "semantic" else [[text] for text in texts]
        cams, proposals = [], []
        for group in groups:
            options = {"attention_layers": layers, "query_embeddings": self.texts.embed(group),
                       "background_embeddings": background}
            if self.method == "gradcam":
                result = compute_cams(self.bundle, image, group, center_features=settings.center_cam_features,
                                      **options)
            else:
                result = compute_maskclip(self.bundle, image, group, **options)
            cams.append(result.upsampled())
            proposals.append(clip_es_refine(result.cams, result.attention, threshold=settings.clipes_threshold,
                                            output_size=result.image_size) if settings.use_clip_es else cams[-1])
        return ProposalMaps(np.concatenate(cams), np.concatenate(proposals))


class FreshClassifier:
    """A classifier with nothing remembered: a new MaskClassifier for every step."""

    def __init__(self, bundle):
        self.bundle = bundle

    def classify(self, images, queries, settings):
        return MaskClassifier(self.bundle).classify(images, queries, settings)


def _assert_same_trace(reused, reference):
    assert [step.alive for step in reused.steps] == [step.alive for step in reference.steps]
    assert [step.kept for step in reused.steps] == [step.kept for step in reference.steps]
    for mine, theirs in zip(reused.steps, reference.steps):
        np.testing.assert_allclose(mine.cams, theirs.cams, atol=1e-5)
        np.testing.assert_allclose(mine.proposals, theirs.proposals, atol=1e-5)
        np.testing.assert_allclose(mine.classifier, theirs.classifier, atol=1e-5)
    np.testing.assert_array_equal(reused.masks, reference.masks)
    np.testing.assert_allclose(reused.scores, reference.scores, atol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "maskclip"])
@pytest.mark.parametrize("mode", ["semantic", "referring"])
def test_segment_with_reuse_matches_recomputing_everything(small, method, mode):
    settings = CarSettings(post="none", mode=mode, proposal_method=method, confidence_threshold=0.19,
                           max_steps=4, templates=("a photo of a {}.", "a {} in the scene."),
                           background=("ground", "sky"), center_cam_features=method == "gradcam")
    car = CaR(small, small, settings)
    reused = car.segment(IMAGE, QUERIES)
    reference = CaR(small, small, settings, proposals=RecomputingProposals(small, method, car.proposal_stage().texts),
                    classifier=FreshClassifier(small)).segment(IMAGE, QUERIES)
    assert reused.num_steps >= 2 and any(len(s.kept) < len(s.alive) for s in reused.steps)
    _assert_same_trace(reused, reference)


def test_the_trunk_and_affinity_run_once_per_image_whatever_the_steps_and_passes(small):
    car = CaR(small, small, CarSettings(post="none", confidence_threshold=0.0, max_steps=3))
    first = car.segment(IMAGE, QUERIES)
    stage = car.proposal_stage()
    assert stage.passes["trunk"] == 1 and stage.passes["affinity"] == 1
    assert stage.passes["maps"] == first.num_steps
    # A second pass on the same picture with other background words (Pascal Context's stuff/things).
    car.segment(IMAGE, QUERIES[:2], settings=car.settings.replace(background=("wall",)))
    assert stage.passes["trunk"] == 1
    # The key is the pixels, not the array object: an edited copy is new work.
    edited = IMAGE.copy()
    edited[0, 0] ^= 1
    car.segment(edited, QUERIES[:2])
    assert stage.passes["trunk"] == 2
    # Switching CLIP-ES off changes the attention the work holds, so it is recomputed.
    car.segment(edited, QUERIES[:2], settings=car.settings.replace(use_clip_es=False))
    assert stage.passes["trunk"] == 3


def test_unchanged_prompted_images_are_not_encoded_again(small):
    # Raw-name CAMs at every step and θ = 0: step 2 sees the same masks, so the same prompted images.
    settings = CarSettings(post="none", confidence_threshold=0.0, templated_cams_after_first_step=False)
    car = CaR(small, small, settings)
    result = car.segment(IMAGE, QUERIES)
    assert result.num_steps == 2
    # Queries with the same binary mask (two empty ones, say) share one prompted image even within a step.
    distinct = len({(mask > settings.mask_threshold).tobytes() for mask in result.steps[0].proposals})
    assert car.classifier.passes == {"images": distinct, "reused": 2 * len(QUERIES) - distinct}
    np.testing.assert_array_equal(result.steps[0].classifier, result.steps[1].classifier)


def test_image_memory_is_bounded_and_keyed_by_feature(small):
    classifier = MaskClassifier(small, remembered_images=2)
    images = [np.full((32, 32, 3), value, dtype=np.uint8) for value in (0, 80, 160)]
    penultimate = classifier.image_embeddings(images, "penultimate_class_token")
    final = classifier.image_embeddings(images, "final")
    assert classifier.passes["images"] == 6 and len(classifier._images) == 2
    assert torch.abs(penultimate - final).max() > 1e-4
    np.testing.assert_allclose(classifier.image_embeddings(images[:1], "final").numpy(), final[:1].numpy(), atol=1e-6)


@pytest.mark.parametrize("strings", [
    ["a", "a photo of a cat.", "there is a big red double-decker bus in the scene."],
    ["word " * 90],  # longer than the context: the tokenizer truncates, the end token sits at position 76
])
def test_encode_tokens_equals_encode_text_over_the_full_context(vit_b16, strings):
    tokens = vit_b16.tokenizer(strings)
    with torch.no_grad():
        full = vit_b16.model.encode_text(tokens)
    np.testing.assert_allclose(encode_tokens(vit_b16.model, tokens).numpy(), full.numpy(), atol=1e-5)


def test_text_cache_matches_one_full_length_call_per_text_and_batches_the_missing(vit_b16):
    names = ["aeroplane", "bicycle", "potted plant", "tv monitor", "person"]
    templates = ("a bad photo of a {}.", "a photo of the large {}.", "there is a {} in the scene.")
    calls = []
    handle = vit_b16.model.transformer.register_forward_hook(lambda module, args, output: calls.append(args[0].shape))
    try:
        cache = TextEmbeddingCache(vit_b16)
        embedded = cache.embed_templates(names, templates)
        again = cache.embed_templates(names[:2], templates[:1])
    finally:
        handle.remove()
    assert len(calls) == 1 and calls[0][0] == len(names) * len(templates) and calls[0][1] < 20
    assert cache.encoded == 15 and torch.equal(again[0], embedded[0, :2])
    with torch.no_grad():
        for t, template in enumerate(templates):
            for n, name in enumerate(names):
                one = vit_b16.model.encode_text(vit_b16.tokenizer([template.format(name)]))
                np.testing.assert_allclose(embedded[t, n].numpy(),
                                           torch.nn.functional.normalize(one, dim=-1)[0].numpy(), atol=1e-5)


def test_stages_share_the_settings_they_are_given(small):
    # Both stages honour the settings of the call, not of the first call that filled the cache.
    for stage in (GradCamProposals(small), MaskClipProposals(small)):
        with_es = stage.propose(IMAGE, QUERIES[:2], CarSettings(use_clip_es=True))
        without = stage.propose(IMAGE, QUERIES[:2], CarSettings(use_clip_es=False))
        np.testing.assert_allclose(with_es.cams, without.cams, atol=1e-6)
        np.testing.assert_array_equal(without.proposals, without.cams)
        assert np.abs(with_es.proposals - with_es.cams).max() > 1e-3


def test_texts_run_shortest_first_and_come_back_in_their_order(small):
    rng = np.random.default_rng(4)
    words = ["cat", "dog", "sky", "tree", "car", "road"]
    names = [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for _ in range(70)]
    lengths = []
    handle = small.model.transformer.register_forward_hook(lambda module, args, output: lengths.append(args[0].shape))
    try:
        embedded = encode_texts(small, names, ("a photo of {}.",), batch_size=32)
    finally:
        handle.remove()
    assert [shape[0] for shape in lengths] == [32, 32, 6]
    assert lengths[0][1] < lengths[1][1] <= lengths[2][1]
    with torch.no_grad():
        one_by_one = torch.cat([small.model.encode_text(small.tokenizer([f"a photo of {name}."])) for name in names])
    np.testing.assert_allclose(embedded.numpy(), torch.nn.functional.normalize(one_by_one, dim=-1).numpy(), atol=1e-5)


def test_the_attention_path_choice_changes_the_trunk_only_by_rounding(vit_b16):
    from carlib.cam import run_trunk
    from carlib.images import proposal_input
    from carlib.towers.openclip_vit import LONG_SEQUENCE, attention_path_for

    image = np.random.default_rng(2).integers(0, 256, size=(400, 400, 3), dtype=np.uint8)  # 626 tokens
    pixels = proposal_input(image, vit_b16.patch_size, vit_b16.mean, vit_b16.std)
    assert torch.backends.mha.get_fastpath_enabled()
    chosen = run_trunk(vit_b16, pixels, 8)
    assert torch.backends.mha.get_fastpath_enabled()  # restored
    with attention_path_for(LONG_SEQUENCE):
        assert not torch.backends.mha.get_fastpath_enabled()
    # Reference: open_clip's own blocks on the default (fused) path.
    with torch.no_grad():
        tokens, _ = vit_b16.tower.embed(pixels)
        for block in list(vit_b16.model.visual.transformer.resblocks)[:-1]:
            tokens = block(tokens)
    np.testing.assert_allclose(chosen.tokens.numpy(), tokens.numpy(), atol=1e-4, rtol=1e-5)


def test_official_numerics_change_the_positions_and_clip_es_precision_and_nothing_else(small):
    from carlib.cam import run_trunk
    from carlib.clip_es import affinity_from_attention
    from carlib.images import proposal_input
    from carlib.towers.positions import interpolate_positional_embedding

    visual = small.model.visual
    pixels = proposal_input(IMAGE, small.patch_size, small.mean, small.std)
    plain = run_trunk(small, pixels, 0)
    rounded = run_trunk(small, pixels, 0, fp16_positions=True)
    # Reference: the same trunk with the positional embedding replaced by its fp16-rounded copy.
    original = visual.positional_embedding.data.clone()
    grid = rounded.grid
    try:
        if tuple(grid) == (math.isqrt(original.shape[0] - 1),) * 2:
            visual.positional_embedding.data = original.half().float()
            expected = run_trunk(small, pixels, 0)
        else:
            resized = interpolate_positional_embedding(original, grid).half().float()
            expected = _trunk_with_positions(small, pixels, resized)
    finally:
        visual.positional_embedding.data = original
    np.testing.assert_array_equal(rounded.tokens.numpy(), expected.tokens.numpy())
    assert torch.abs(rounded.tokens - plain.tokens).max() > 0

    attention = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    single = affinity_from_attention(attention, dtype=np.float32)
    double = affinity_from_attention(attention)
    assert single.dtype == np.float32 and double.dtype == np.float64
    np.testing.assert_allclose(single, double, rtol=1e-5)
    assert np.abs(single - double).max() > 0

    # Nothing else: same proposals stage output shapes, and the classifier ignores the setting.
    official = CarSettings(official_numerics=True, templates=("a photo of a {}.",))
    classifier = MaskClassifier(small)
    np.testing.assert_array_equal(classifier.classify([IMAGE], QUERIES, official),
                                  MaskClassifier(small).classify([IMAGE], QUERIES, official.replace(official_numerics=False)))
    stage = GradCamProposals(small)
    on = stage.propose(IMAGE, QUERIES[:2], official)
    off = stage.propose(IMAGE, QUERIES[:2], official.replace(official_numerics=False))
    assert stage.passes["trunk"] == 2 and on.proposals.shape == off.proposals.shape
    np.testing.assert_allclose(on.proposals, off.proposals, atol=5e-2)


def _trunk_with_positions(bundle, pixels, positions):
    from carlib.towers import Trunk

    visual = bundle.model.visual
    with torch.no_grad():
        patches = visual.conv1(pixels)
        grid = (patches.shape[-2], patches.shape[-1])
        patches = patches.flatten(2).transpose(1, 2)
        tokens = torch.cat([visual.class_embedding.expand(1, 1, -1), patches], dim=1) + positions
        tokens = visual.ln_pre(tokens)
        for block in list(visual.transformer.resblocks)[:-1]:
            tokens = block(tokens)
    return Trunk(tokens, grid, None)
