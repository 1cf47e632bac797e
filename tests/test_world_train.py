"""Training the ShapesWorld CLIP: seeding, resuming, the batch recipe, checkpoint round-trip."""

from __future__ import annotations

import json
import re

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import load_file

import carlib
from carlib.apps.cli import main
from carlib.world.captions import SINGLE_TEMPLATES
from carlib.world.classes import CLASS_NAMES
from carlib.world.model import default_config, tokenizer_for
from carlib.world.scene import Scene
from carlib.towers import tower_for
from carlib.towers.attention import attention_weights
from carlib.world.train import (DENSE_NAMES, IGNORE_PATCH, RESUME_FILE, TrainSettings, affinity_loss, dense_loss,
                                forward_losses, jitter_mask, make_batch, make_sample, patch_labels, prompt_class_loss,
                                train)

TINY = dict(steps=1, batch_size=6, warmup_steps=1)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_same_seed_same_first_loss_and_different_seed_differs(tmp_path):
    first = train(tmp_path / "a", TrainSettings(seed=0, **TINY), progress=False)["losses"][0]
    again = train(tmp_path / "b", TrainSettings(seed=0, **TINY), progress=False)["losses"][0]
    other = train(tmp_path / "c", TrainSettings(seed=1, **TINY), progress=False)["losses"][0]
    assert first == again
    assert first != other
    assert np.isfinite(first) and 0 < first < 10


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    settings = TrainSettings(seed=2, steps=3, batch_size=4, warmup_steps=1)
    straight = train(tmp_path / "straight", settings, progress=False, save_every=100)
    partial = train(tmp_path / "resumed", settings, progress=False, minutes=0.0)
    assert partial["steps"] == 1
    assert (tmp_path / "resumed" / RESUME_FILE).is_file(), "a stopped run keeps its resume state"
    assert (tmp_path / "resumed" / "model.safetensors").is_file(), "and still writes a usable checkpoint"
    finished = train(tmp_path / "resumed", settings, progress=False)
    assert finished["steps"] == 3 and not (tmp_path / "resumed" / RESUME_FILE).exists()
    assert finished["losses"] == straight["losses"]
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    train(tmp_path / "other", settings, progress=False, minutes=0.0)
    with pytest.raises(ValueError, match="different settings"):
        train(tmp_path / "other", TrainSettings(seed=3, steps=3, batch_size=4, warmup_steps=1), progress=False)


def test_batches_are_a_function_of_seed_and_step():
    settings = TrainSettings(seed=0, batch_size=32)
    config = default_config()
    tokenizer = tokenizer_for(config)
    pixels, tokens, positives, labels, prompted_classes = make_batch(5, settings, config, tokenizer)
    again = make_batch(5, settings, config, tokenizer)
    assert torch.equal(pixels, again[0]) and torch.equal(tokens, again[1])
    assert not torch.equal(pixels, make_batch(6, settings, config, tokenizer)[0])
    assert pixels.shape == (32, 3, 96, 96) and tokens.shape == (32, config["context_length"])
    assert torch.equal(positives, positives.T) and torch.all(positives.diagonal() == 1)
    assert labels.shape == (32, 144) and torch.equal(labels, again[3])
    prompted = prompted_classes != IGNORE_PATCH
    assert prompted_classes.dtype == torch.int64 and torch.equal(prompted_classes, again[4])
    assert 0 < int(prompted.sum()) < 32 and bool((prompted_classes[prompted] < len(CLASS_NAMES)).all())


def test_visual_prompt_samples_name_only_the_prompted_object():
    settings = TrainSettings(seed=0)
    dense = TrainSettings(seed=0, prompt_dense=True)
    prompted = red_ellipses = 0
    for index in range(120):
        image, caption, labels, prompted_class = make_sample(index, settings)
        is_prompted = prompted_class != IGNORE_PATCH
        red = np.all(image == (255, 0, 0), axis=-1).any()
        assert not red or is_prompted, "scenes never contain pure red, so red means a drawn ellipse"
        red_ellipses += red
        if is_prompted:
            prompted += 1
            assert len(caption.key[0]) == 1 and caption.key[1] is None
            named = [name for name in CLASS_NAMES if name in re.findall(r"[a-z]+", caption.text)]
            assert named == [CLASS_NAMES[prompted_class]]
            assert any(caption.text.startswith(t.split("{}")[0]) for t in SINGLE_TEMPLATES)
            assert np.all(labels == IGNORE_PATCH), "prompted images are left out of the dense loss by default"
            _, _, dense_labels, _ = make_sample(index, dense)
            assert np.all(dense_labels == CLASS_NAMES.index(named[0])), "prompt_dense: every patch names the object"
        else:
            assert np.all(labels != IGNORE_PATCH)
    assert 30 <= prompted <= 66  # about 0.4 x 0.95 x 120
    assert 0.5 * prompted <= red_ellipses < prompted  # some prompts are blur or gray only


def test_jitter_mask_grows_or_shrinks_within_the_radius():
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 12:28] = True
    assert jitter_mask(mask, np.random.default_rng(0), 0) is mask
    seen = set()
    for seed in range(40):
        changed = jitter_mask(mask, np.random.default_rng(seed), 2)
        seen.add(int(changed.sum()) - int(mask.sum()))
        assert (changed >= mask).all() or (changed <= mask).all(), "one direction at a time"
        grown = np.zeros((40, 40), dtype=bool)
        grown[8:32, 10:30] = True
        shrunk = np.zeros((40, 40), dtype=bool)
        shrunk[12:28, 14:26] = True
        assert (changed <= grown).all() and (changed >= shrunk).all(), "at most 2 pixels either way"
    assert min(seen) < 0 < max(seen) and 0 in seen


def test_affinity_loss_rewards_attention_on_the_same_label():
    labels = torch.tensor([[0, 0, 1, 1]])
    tokens = 5  # class token + 4 patches

    def attention(rows):
        return torch.tensor([[[1.0, 0, 0, 0, 0]] + rows])

    on_own = attention([[0, .5, .5, 0, 0], [0, .5, .5, 0, 0], [0, 0, 0, .5, .5], [0, 0, 0, .5, .5]])
    uniform = torch.full((1, tokens, tokens), 1.0 / tokens)
    on_other = attention([[0, 0, 0, .5, .5], [0, 0, 0, .5, .5], [0, .5, .5, 0, 0], [0, .5, .5, 0, 0]])
    assert float(affinity_loss(on_own, labels)) == pytest.approx(0.0, abs=1e-6)
    # hand-computed: each patch puts 2/5 of its mass on its own label
    assert float(affinity_loss(uniform, labels)) == pytest.approx(-np.log(0.4), rel=1e-6)
    assert float(affinity_loss(on_other, labels)) > float(affinity_loss(uniform, labels))
    assert float(affinity_loss(on_other, torch.full_like(labels, IGNORE_PATCH))) == 0.0


def test_the_training_pass_gives_open_clips_outputs_and_the_attention_clip_es_reads():
    torch.manual_seed(0)
    from carlib.world.model import build_shapes_clip

    model = build_shapes_clip(default_config())
    pixels = torch.randn(2, 3, 96, 96)
    outputs = tower_for(model.visual).training_pass(pixels, 2)
    maps = outputs.attention
    assert len(maps) == 2 and maps[0].shape == (2, 145, 145) and maps[0].requires_grad
    with torch.no_grad():  # open_clip's own forward (pooled embedding and ln_post'd tokens), and the maps by hand
        visual = model.visual
        visual.output_tokens = True
        try:
            pooled, patch_tokens = visual(pixels)
        finally:
            visual.output_tokens = False
        tokens = visual._embeds(pixels)
        blocks = visual.transformer.resblocks
        expected = []
        for index, block in enumerate(blocks):
            if index >= len(blocks) - 2:
                expected.append(attention_weights(block, block.ln_1(tokens)))
            tokens = block(tokens)
    torch.testing.assert_close(outputs.embedding.detach(), pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs.patch_embeddings.detach(), patch_tokens @ visual.proj, atol=1e-5, rtol=1e-5)
    for got, want in zip(maps, expected):
        assert torch.allclose(got.detach(), want, atol=1e-5)
    assert tower_for(model.visual).training_pass(pixels, 0).attention == []


def test_forward_losses_leave_prompted_samples_out_of_the_affinity_loss():
    torch.manual_seed(0)
    from carlib.world.model import build_shapes_clip

    config = default_config()
    model = build_shapes_clip(config)
    tokenizer = tokenizer_for(config)
    settings = TrainSettings(seed=0, batch_size=8, prompt_class_weight=1.0)
    texts = tokenizer(list(DENSE_NAMES))
    pixels, tokens, positives, labels, prompted_classes = make_batch(0, settings, config, tokenizer)
    assert bool((prompted_classes != IGNORE_PATCH).any()) and bool((prompted_classes == IGNORE_PATCH).any())
    with torch.no_grad():
        losses = forward_losses(model, pixels, tokens, positives, labels, prompted_classes, texts, settings)
        assert all(bool(torch.isfinite(x)) for x in losses) and float(losses.affinity) > 0
        assert float(losses.prompt_class) > 0
        expected_total = (losses.contrastive + settings.dense_weight * losses.dense
                          + settings.affinity_weight * losses.affinity + losses.prompt_class)
        assert float(losses.total(settings)) == pytest.approx(float(expected_total), rel=1e-6)
        everything_prompted = torch.zeros_like(prompted_classes)
        none = forward_losses(model, pixels, tokens, positives, labels, everything_prompted, texts, settings)
        assert float(none.affinity) == 0.0
        nothing_prompted = torch.full_like(prompted_classes, IGNORE_PATCH)
        assert float(forward_losses(model, pixels, tokens, positives, labels, nothing_prompted, texts,
                                    settings).prompt_class) == 0.0
        off = TrainSettings(seed=0, batch_size=8, affinity_weight=0.0)
        off_losses = forward_losses(model, pixels, tokens, positives, labels, prompted_classes, texts, off)
        assert float(off_losses.affinity) == 0.0 and float(off_losses.prompt_class) == 0.0


def test_prompt_class_loss_is_cross_entropy_over_class_names_of_prompted_samples_only():
    classes = torch.eye(3)  # three unit "class name" embeddings
    images = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    scale = torch.tensor(2.0)
    targets = torch.tensor([0, IGNORE_PATCH, 1])
    # hand-computed: sample 0 is right (logit 2 vs 0, 0), sample 2 is wrong (its class 1 has logit 0, class 2 has 2)
    right = -np.log(np.exp(2) / (np.exp(2) + 2))
    wrong = -np.log(1 / (np.exp(2) + 2))
    assert float(prompt_class_loss(images, classes, scale, targets)) == pytest.approx((right + wrong) / 2, rel=1e-6)
    assert float(prompt_class_loss(images, classes, scale, torch.full((3,), IGNORE_PATCH))) == 0.0


def test_checkpoint_round_trip_with_open_clip_and_load_clip(tmp_path):
    assert main(["world", "train", "--out", str(tmp_path / "m"), "--steps", "1", "--batch-size", "4",
                 "--no-progress", "--threads", "1"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    for key in ("model_cfg", "image_size", "mean", "std", "context_length", "class_names", "background_names"):
        assert key in config
    for key in ("command", "seed", "steps", "samples_seen", "minutes", "hardware", "torch_version", "final_loss"):
        assert key in config["training"]
    assert config["model_cfg"]["vision_cfg"]["pool_type"] == "avg"
    # exactly what the project's loader does
    model = open_clip.CLIP(**config["model_cfg"])
    state = load_file(str(tmp_path / "m" / "model.safetensors"))
    model.load_state_dict(state, strict=True)
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=config["context_length"])
    assert tokenizer(["a lemon"]).shape == (1, config["context_length"])
    assert model.vocab_size == 49408
    bundle = carlib.load_clip("shapes", pretrained=str(tmp_path / "m"), device="cpu")
    with torch.no_grad():
        text = tokenizer(["a photo of a lemon on grass"])
        assert torch.allclose(model.encode_text(text), bundle.model.encode_text(text))
    assert bundle.patch_size == config["model_cfg"]["vision_cfg"]["patch_size"]
    assert bundle.model.visual.transformer.resblocks[-1].ln_1 is not None


def test_patch_labels_take_the_majority_of_each_patch():
    class_map = np.zeros((16, 16), dtype=np.uint8)
    background_map = np.zeros((16, 16), dtype=np.uint8)
    background_map[:, 8:] = 2                      # right half: third background kind
    class_map[:5, :8] = CLASS_NAMES.index("kite") + 1     # 40 of 64 pixels of the top-left patch
    class_map[8:11, 8:16] = CLASS_NAMES.index("dice") + 1  # only 24 of 64 pixels of the bottom-right patch
    scene = Scene(image=np.zeros((16, 16, 3), np.uint8), class_map=class_map,
                  instance_map=(class_map > 0).astype(np.uint8), background_map=background_map)
    labels = patch_labels(scene, 8)
    names = [DENSE_NAMES[k] for k in labels]
    assert names == ["kite", DENSE_NAMES[len(CLASS_NAMES) + 2], DENSE_NAMES[len(CLASS_NAMES)],
                     DENSE_NAMES[len(CLASS_NAMES) + 2]]


def test_dense_loss_ignores_prompted_samples_and_prefers_matching_patches():
    torch.manual_seed(0)
    config = default_config()
    from carlib.world.model import build_shapes_clip

    model = build_shapes_clip(config)
    tokenizer = tokenizer_for(config)
    texts = tokenizer(list(DENSE_NAMES))
    with torch.no_grad():
        text_features = torch.nn.functional.normalize(model.encode_text(texts), dim=-1)
        # patch tokens whose projection points exactly at the text of label k
        pinv = torch.linalg.pinv(model.visual.proj)
        tokens = (text_features @ pinv).unsqueeze(0)  # 1 x 12 x width
        right = torch.arange(len(DENSE_NAMES)).unsqueeze(0)
        wrong = right.roll(1, dims=1)
        scale = torch.tensor(50.0)
        projected = tokens @ model.visual.proj
        right_loss = dense_loss(projected, text_features, right, scale)
        assert right_loss < dense_loss(projected, text_features, wrong, scale)
        ignored = torch.full_like(right, IGNORE_PATCH)
        assert float(dense_loss(projected, text_features, ignored, scale)) == 0.0


def test_prompted_samples_draw_their_blur_kernel_from_the_settings():
    with pytest.raises(ValueError, match="odd"):
        TrainSettings(prompt_blur_kernels=(15, 16))
    with pytest.raises(ValueError, match="at least one"):
        TrainSettings(prompt_blur_kernels=())
    light, heavy = TrainSettings(seed=0, prompt_blur_kernels=(3,)), TrainSettings(seed=0, prompt_blur_kernels=(31,))
    differing = 0
    for index in range(80):
        a, b = make_sample(index, light), make_sample(index, heavy)
        assert a[1] == b[1] and a[3] == b[3], "the kernel changes pixels only, not what the sample says"
        if a[3] == IGNORE_PATCH:
            np.testing.assert_array_equal(a[0], b[0])
        else:
            differing += int(not np.array_equal(a[0], b[0]))
    assert differing >= 5  # 3 of the 7 prompt choices blur; about 22 of 80 samples are prompted
