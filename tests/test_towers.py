"""Every family's tower adapter against independent references: open_clip's own forward, pytorch-grad-cam, timm's
own attention probabilities. The towers are the real architectures with seeded random weights."""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import carlib
from carlib.cam import compute_cams, trunk_attention
from carlib.towers import CapabilityError, ConvTower, OpenClipViT, TimmEva, TimmViT, tower_for

FAMILIES = {  # name: (adapter, training resolution, Grad-CAM layer, default target)
    "EVA02-B-16": (TimmEva, 224, "patch_mean"),
    "PE-Core-B-16": (TimmEva, 224, "patch_mean"),
    "ViT-B-16-SigLIP2": (TimmViT, 224, "pooled"),
    "MobileCLIP-S2": (ConvTower, 256, "pooled"),
    "convnext_base": (ConvTower, 224, "pooled"),
}


@pytest.fixture(scope="module")
def bundles() -> dict[str, carlib.ClipBundle]:
    torch.set_num_threads(2)
    return {name: carlib.load_clip(name, None, device="cpu", seed=0) for name in FAMILIES}


def _pixels(size: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32))


def _texts(bundle: carlib.ClipBundle, count: int, seed: int = 1) -> torch.Tensor:
    vectors = torch.from_numpy(np.random.default_rng(seed).standard_normal((count, bundle.embed_dim)).astype(np.float32))
    return torch.nn.functional.normalize(vectors, dim=-1)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_gets_its_adapter_and_the_adapters_embedding_is_encode_images(bundles, name):
    bundle = bundles[name]
    adapter, size, target = FAMILIES[name]
    assert type(bundle.tower) is adapter and bundle.tower.default_cam_target == target
    pixels = _pixels(size)
    with torch.no_grad():
        reference = torch.nn.functional.normalize(bundle.model.encode_image(pixels), dim=-1)
        ours = carlib.image_embeddings(bundle, [np.zeros((size, size, 3), np.uint8)])  # the public entry point
        assert ours.shape == (1, bundle.embed_dim)
        np.testing.assert_allclose(ours.norm(dim=-1).numpy(), 1.0, atol=1e-6)
        encoded = torch.nn.functional.normalize(bundle.tower.encode(pixels), dim=-1)
        np.testing.assert_allclose(encoded.numpy(), reference.numpy(), atol=1e-5)
        if adapter is not ConvTower:  # the adapter's own piecewise path: embed, blocks, pooling
            pieces = torch.nn.functional.normalize(bundle.tower.image_embedding(pixels), dim=-1)
            np.testing.assert_allclose(pieces.numpy(), reference.numpy(), atol=1e-5)


def test_image_embeddings_of_real_files_use_the_models_preprocessing(bundles, tmp_path):
    from PIL import Image

    bundle = bundles["convnext_base"]
    picture = np.random.default_rng(3).integers(0, 256, size=(300, 200, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "p.png")
    expected = torch.nn.functional.normalize(
        bundle.model.encode_image(bundle.preprocess(Image.fromarray(picture))[None]), dim=-1)
    got = carlib.image_embeddings(bundle, [tmp_path / "p.png", picture])
    np.testing.assert_allclose(got.numpy(), torch.cat([expected, expected]).detach().numpy(), atol=1e-5)


class _Scores(torch.nn.Module):
    """open_clip's encode_image (with the target's pooling), then the softmax or sigmoid over the texts."""

    def __init__(self, bundle: carlib.ClipBundle, texts: torch.Tensor, kind: str):
        super().__init__()
        self.clip, self.texts, self.kind = bundle.model, texts, kind

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        image = torch.nn.functional.normalize(self.clip.encode_image(pixels), dim=-1)
        logits = self.clip.logit_scale.exp() * image @ self.texts.T
        if self.kind == "sigmoid":
            return torch.sigmoid(logits + self.clip.logit_bias)
        return logits.softmax(dim=-1)


class _GridGradCAM(GradCAM):
    def __init__(self, *args, grid, **kwargs):
        super().__init__(*args, **kwargs)
        self._grid = grid

    def get_target_width_height(self, input_tensor):
        return self._grid[1], self._grid[0]


def _reference_cams(bundle, pixels, texts, queries: int, kind: str) -> np.ndarray:
    """pytorch-grad-cam on open_clip's and timm's own forward, the CAM layer named from the architecture."""
    trunk = bundle.model.visual.trunk
    if isinstance(bundle.tower, ConvTower):
        layer = trunk.final_conv if hasattr(trunk, "final_conv") else trunk.norm_pre
        grid = (pixels.shape[2] // 32, pixels.shape[3] // 32)
        reshape = None
    else:
        layer = trunk.blocks[-1].norm1
        grid = (pixels.shape[2] // 16, pixels.shape[3] // 16)
        prefix = trunk.num_prefix_tokens

        def reshape(tokens):
            return tokens[:, prefix:, :].reshape(tokens.shape[0], grid[0], grid[1], -1).permute(0, 3, 1, 2)
    saved = (getattr(trunk, "attn_pool", None), getattr(trunk, "global_pool", None))
    if bundle.tower.default_cam_target == "patch_mean":  # timm's own avg pooling: the patch mean, fc_norm, head
        trunk.attn_pool, trunk.global_pool = None, "avg"
    try:
        with _GridGradCAM(model=_Scores(bundle, texts, kind), target_layers=[layer], reshape_transform=reshape,
                          grid=grid) as cam:
            return np.concatenate([cam(input_tensor=pixels.clone().requires_grad_(True), targets=[ClassifierOutputTarget(i)])
                                   for i in range(queries)])
    finally:
        if bundle.tower.default_cam_target == "patch_mean":
            trunk.attn_pool, trunk.global_pool = saved


@pytest.mark.parametrize("name", FAMILIES)
def test_gradcam_through_the_adapter_equals_pytorch_grad_cam(bundles, name):
    bundle = bundles[name]
    size = FAMILIES[name][1]
    picture = np.random.default_rng(5).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    pixels = carlib.images.proposal_input(picture, bundle.patch_size, bundle.mean, bundle.std)
    texts = _texts(bundle, 5)
    queries = ["q0", "q1", "q2"]
    kinds = ("softmax", "sigmoid") if bundle.training_loss == "sigmoid" else ("softmax",)
    for kind in kinds:
        ours = compute_cams(bundle, picture, queries, ["b0", "b1"], attention_layers=0, query_embeddings=texts[:3],
                            background_embeddings=texts[3:] if kind == "softmax" else texts[:0], score_kind=kind)
        reference = _reference_cams(bundle, pixels, texts if kind == "softmax" else texts[:3], 3, kind)
        assert ours.cams.shape == reference.shape
        assert not ours.used_fallback.any()
        np.testing.assert_allclose(ours.cams, reference, atol=1e-4)
        assert np.abs(ours.cams[0] - ours.cams[1]).max() > 0.05  # the maps differ, so the check means something


@pytest.mark.parametrize("name", ["EVA02-B-16", "PE-Core-B-16", "ViT-B-16-SigLIP2"])
def test_clip_es_attention_equals_the_probabilities_timm_computes(bundles, name):
    bundle = bundles[name]
    blocks = bundle.model.visual.trunk.blocks
    pixels = _pixels(224, seed=2)
    captured = []
    handles = []
    for block in blocks[-8:]:
        block.attn.fused_attn = False  # timm then forms the probabilities explicitly and drops them out
        handles.append(block.attn.attn_drop.register_forward_hook(
            lambda _module, _inputs, output: captured.append(output.mean(dim=1))))
    try:
        with torch.no_grad():
            bundle.model.encode_image(pixels)
    finally:
        for block, handle in zip(blocks[-8:], handles):
            handle.remove()
            block.attn.fused_attn = True
    prefix = bundle.tower.num_prefix_tokens
    expected = (sum(captured) / 8)[0, prefix:, prefix:].numpy()
    ours = trunk_attention(bundle, bundle.tower.trunk(pixels, 8), 8)
    assert ours.shape == (196, 196)
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0 - (sum(captured) / 8)[0, prefix:, :prefix].sum(-1).numpy(),
                               atol=1e-5)


def test_eva_rotary_positions_at_a_new_grid_are_timms_own(bundles):
    bundle = bundles["EVA02-B-16"]
    trunk = bundle.model.visual.trunk
    tower = bundle.tower
    at_training = tower.rope((14, 14))
    torch.testing.assert_close(at_training, trunk.rope.get_embed())
    wide = tower.rope((10, 17))
    assert wide.shape[0] == 170 and not torch.equal(wide[:140], at_training[:140])


def test_timm_vit_positions_are_resized_as_open_clips(bundles):
    from carlib.towers.positions import interpolate_positional_embedding

    bundle = bundles["ViT-B-16-SigLIP2"]
    trunk = bundle.model.visual.trunk
    pixels = _pixels(224)[:, :, :160, :]  # a 10 x 14 grid
    tokens, grid = bundle.tower.embed(pixels)
    assert grid == (10, 14) and tokens.shape == (1, 140, 768)
    with torch.no_grad():
        patches = trunk.patch_embed.proj(pixels).flatten(2).transpose(1, 2)
        expected = trunk.norm_pre(patches + interpolate_positional_embedding(trunk.pos_embed[0], grid, 0))
    torch.testing.assert_close(tokens, expected)


def test_maskclip_on_an_attention_pool_reads_each_patch_through_the_pool_alone(bundles):
    bundle = bundles["ViT-B-16-SigLIP2"]
    trunk = bundle.model.visual.trunk
    pixels = _pixels(224, seed=4)
    work = bundle.tower.trunk(pixels, 0)
    dense = bundle.tower.dense_embeddings(work)
    assert dense.shape == (196, 768)
    with torch.no_grad():  # one patch alone through timm's own MAP head equals its dense embedding
        last = trunk.blocks[-1]
        values = bundle.tower.value_path(len(trunk.blocks) - 1, last.norm1(work.tokens), work.grid)
        lone = trunk.attn_pool(trunk.norm(values[:, 7:8]))  # softmax over one key is 1: the identity attention
        expected = torch.nn.functional.normalize(bundle.model.visual.head(trunk.fc_norm(lone)), dim=-1)
    torch.testing.assert_close(dense[7:8], expected[:, :], atol=1e-5, rtol=1e-5)


def test_convolutional_towers_refuse_clip_es_and_dense_maps_and_say_why(bundles):
    bundle = bundles["convnext_base"]
    picture = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(CapabilityError, match="CLIP-ES needs attention maps.*convolutional.*no-clip-es"):
        compute_cams(bundle, picture, ["a"], attention_layers=8, query_embeddings=_texts(bundle, 1))
    with pytest.raises(CapabilityError, match="MaskCLIP-style dense maps needs attention"):
        carlib.maskclip.compute_maskclip(bundle, picture, ["a"], attention_layers=0,
                                         query_embeddings=_texts(bundle, 1))
    with pytest.raises(CapabilityError, match="class_token.*needs a class token"):
        compute_cams(bundle, picture, ["a"], target="class_token", attention_layers=0,
                     query_embeddings=_texts(bundle, 1))
    with pytest.raises(CapabilityError, match="penultimate_class_token.*use classifier_feature='final'"):
        carlib.image_embeddings(bundle, [picture], feature="penultimate_class_token")


def test_an_unsupported_tower_names_the_supported_families():
    model = open_clip.create_model("RN50", pretrained=None)
    with pytest.raises(CapabilityError, match="no adapter for ModifiedResNet.*EVA02.*SigLIP"):
        tower_for(model.visual)


def test_open_clip_vit_keeps_the_papers_targets(vit_b16):
    tower = vit_b16.tower
    assert isinstance(tower, OpenClipViT) and tower.default_cam_target == "patch_mean"
    assert tower.supports_penultimate_class_token and vit_b16.default_classifier_feature == "penultimate_class_token"
    assert math.isclose(float(vit_b16.logit_scale), float(vit_b16.model.logit_scale.exp()))
    assert vit_b16.logit_bias is None and vit_b16.training_loss == "softmax"


@pytest.mark.parametrize("name", ["EVA02-B-16", "PE-Core-B-16", "ViT-B-16-SigLIP2"])
def test_the_dense_methods_primitives_rebuild_each_familys_last_block(bundles, name):
    """Queries, keys, values, the attention branch and the block's tail, with the usual q·k attention put back,
    are the block itself (timm's own forward, rotary positions included); each dense method then runs."""
    from carlib.dense_methods import DENSE_METHODS, dense_patch_embeddings

    bundle = bundles[name]
    tower = bundle.tower
    work = tower.trunk(_pixels(224, seed=6)[:, :, :160, :], 0)  # a 10 x 14 grid, off the training grid
    last = tower.num_blocks - 1
    with torch.no_grad():
        expected = tower.run_block(last, work.tokens, work.grid)
        normed = tower.first_norm(last)(work.tokens)
        qkv = tower.head_qkv(last, normed, work.grid)
        weights = qkv.logits().softmax(dim=-1)
        rebuilt = tower.block_tail(last, work.tokens, tower.attention_branch(last, weights @ qkv.value, normed))
    torch.testing.assert_close(rebuilt, expected, atol=2e-5, rtol=1e-5)
    embeddings = {method: dense_patch_embeddings(bundle, work, method) for method in DENSE_METHODS}
    for method, patches in embeddings.items():
        assert patches.shape == (140, bundle.embed_dim)
        np.testing.assert_allclose(patches.norm(dim=-1).numpy(), 1.0, atol=1e-5)
        if method != "maskclip":
            assert (patches - embeddings["maskclip"]).abs().max() > 1e-2


def test_open_clip_blocks_rebuilt_by_the_primitives(vit_b16):
    """Both open_clip block kinds: nn.MultiheadAttention, and open_clip's own Attention with head scale, inner
    norm and the block's ln_attn and layer scale (a CustomResidualAttentionBlock built here with random weights)."""
    from open_clip.transformer import CustomResidualAttentionBlock

    from carlib.towers.attention import attention_output, head_query_key_value, value_path

    tower = vit_b16.tower
    work = tower.trunk(_pixels(224, seed=7)[:, :, :96, :128], 0)
    last = tower.num_blocks - 1
    with torch.no_grad():
        normed = tower.first_norm(last)(work.tokens)
        qkv = tower.head_qkv(last, normed, work.grid)
        rebuilt = tower.block_tail(last, work.tokens, tower.attention_branch(
            last, qkv.logits().softmax(dim=-1) @ qkv.value, normed))
        torch.testing.assert_close(rebuilt, tower.run_block(last, work.tokens, work.grid), atol=2e-5, rtol=1e-5)
        torch.manual_seed(0)
        block = CustomResidualAttentionBlock(32, 4, ls_init_value=0.5, scale_heads=True, scale_attn=True,
                                             scale_fc=True).eval()
        for parameter in block.parameters():
            parameter.normal_(0, 0.3)
        tokens = torch.randn(1, 5, 32)
        normed = block.ln_1(tokens)
        qkv = head_query_key_value(block.attn, normed)
        mixed = attention_output(block.attn, qkv.logits().softmax(dim=-1) @ qkv.value)
        branch = block.ls_1(block.ln_attn(mixed))
        tail = tokens + branch
        torch.testing.assert_close(tail + block.ls_2(block.mlp(block.ln_2(tail))), block(tokens), atol=1e-5, rtol=1e-5)
        # The identity attention through the output is the value path MaskCLIP reads.
        torch.testing.assert_close(attention_output(block.attn, qkv.value), value_path(block.attn, normed))


def test_convolutional_towers_refuse_the_dense_methods(bundles):
    from carlib.dense_methods import dense_similarity

    bundle = bundles["convnext_base"]
    for method, title in (("sclip", "SCLIP"), ("clearclip", "ClearCLIP"), ("naclip", "NACLIP")):
        with pytest.raises(CapabilityError, match=f"{title} dense maps needs attention maps.*convolutional"):
            dense_similarity(bundle, np.zeros((64, 64, 3), np.uint8), ["a"], method)
