"""Mixed precision: --amp on segment and eval, the notebooks' amp, float32 islands, and what bf16 changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import carlib
from carlib.apps.cli import main
from carlib.precision import (
    AMP_CHOICES,
    autocast_for,
    cpu_bf16_support,
    cpu_flags,
    full_precision,
    resolve_amp,
    set_global_autocast,
)

ROOT = Path(__file__).resolve().parent.parent
SCENE = ROOT / "data" / "images" / "shapes_0_orange_starfish_balloon.png"


@pytest.fixture(scope="module")
def shapes() -> carlib.ClipBundle:
    return carlib.load_clip("shapes")


def test_amp_choices_resolve_per_device():
    assert AMP_CHOICES == ("auto", "off", "bf16", "fp16")
    assert resolve_amp("cpu", "auto") is None  # the faithful default stays float32 on CPU, whatever the CPU
    assert resolve_amp("cpu", "off") is None
    assert resolve_amp("cpu", "bf16") is torch.bfloat16
    assert resolve_amp("cuda", "off") is None
    assert resolve_amp("cuda", "fp16") is torch.float16
    with pytest.raises(ValueError, match="amp='fp16' needs a CUDA device"):
        resolve_amp("cpu", "fp16")
    with pytest.raises(ValueError, match="unknown amp 'fp8'"):
        resolve_amp("cpu", "fp8")
    assert isinstance(autocast_for("cpu", "bf16"), torch.autocast)
    assert not isinstance(autocast_for("cpu", "auto"), torch.autocast)


def test_bf16_pays_only_with_the_native_flags(tmp_path):
    assert cpu_bf16_support({"avx2", "avx512f"}) == ()
    assert cpu_bf16_support({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}) == ("amx_bf16", "avx512_bf16")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_full_precision_keeps_small_products_float32_under_autocast():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        with full_precision(a):
            inside = a @ b
        assert (a @ b).dtype == torch.bfloat16  # restored on leaving
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, a @ b, rtol=0, atol=0)


def test_the_scores_after_the_encoders_are_float32_under_autocast(shapes):
    from carlib.classifier import MaskClassifier
    from carlib.maskclip import dense_probabilities
    from carlib.settings import CarSettings

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8) for _ in range(3)]
    queries = ["orange", "kite", "tent"]
    settings = CarSettings(templates=("a photo of a {}.", "a {}."))
    classifier = MaskClassifier(shapes)
    # Encoders run in fp32 here and are remembered; under autocast only the scoring runs again.
    classifier.image_embeddings(images)
    classifier.text_embeddings(queries, settings.templates)
    reference = classifier.classify(images, queries, settings)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scored = classifier.classify(images, queries, settings)
        patches = torch.nn.functional.normalize(torch.randn(6, 64), dim=-1)
        texts = torch.nn.functional.normalize(torch.randn(5, 64), dim=-1)
        dense = dense_probabilities(patches, texts, 3, 17.0)
    np.testing.assert_array_equal(scored, reference)
    np.testing.assert_array_equal(dense.numpy(), dense_probabilities(patches, texts, 3, 17.0).numpy())
    assert dense.dtype == torch.float32


def test_bf16_changes_little_on_shapesworld_and_the_comparison_says_what():
    from carlib.evaluation.agreement import compare_precisions_on_world

    agreement = compare_precisions_on_world(3, "bf16", progress=False)
    assert agreement.scenes == 3 and agreement.amp == "bf16"
    assert set(agreement.miou) == {"fp32", "bf16"}
    assert 0 < agreement.max_score_change < 0.2  # autocast really ran, and stayed close
    assert 0.9 < agreement.pixels_unchanged <= 1 and 0 <= agreement.kept_unchanged <= 1
    assert len(agreement.lines()) == 3 and "bf16" in agreement.lines()[0]
    with pytest.raises(ValueError, match="full precision"):
        compare_precisions_on_world(1, "auto", progress=False)


def test_segment_amp_bf16_runs_records_itself_and_fp16_is_refused_on_cpu(tmp_path, capsys):
    base = [str(SCENE), "--queries", "orange, starfish, kite", "--model", "shapes", "--preset", "shapes"]
    assert main(["segment", *base, "--out", str(tmp_path / "fp32")]) == 0
    assert main(["segment", *base, "--out", str(tmp_path / "bf16"), "--amp", "bf16", "--memory-budget", "64"]) == 0
    full = json.loads((tmp_path / "fp32" / "result.json").read_text())
    low = json.loads((tmp_path / "bf16" / "result.json").read_text())
    assert full["amp"] == "off" and low["amp"] == "bf16"
    assert full["scores"] != low["scores"]  # bf16 really ran
    np.testing.assert_allclose(full["steps"][0]["scores"], low["steps"][0]["scores"], atol=0.1)
    capsys.readouterr()
    assert main(["segment", *base, "--out", str(tmp_path / "fp16"), "--amp", "fp16"]) == 2
    assert "amp='fp16' needs a CUDA device" in capsys.readouterr().err
    assert main(["segment", *base, "--out", str(tmp_path / "budget"), "--memory-budget", "0"]) == 2
    assert "positive number of MiB" in capsys.readouterr().err
    assert not (tmp_path / "fp16").exists() and not (tmp_path / "budget").exists()


def test_the_notebook_setup_turns_autocast_on_and_off():
    from torch.nn.modules.module import _global_forward_pre_hooks

    from carlib import tutorial

    try:
        session = tutorial.setup("shapes", amp="bf16", verbose=False)
        assert session.amp == "bf16" and torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert len(_global_forward_pre_hooks) == 1  # the attention layout fix comes with it
        assert "bf16 autocast" in session.note
        session = tutorial.setup("shapes", amp="auto", verbose=False)  # auto stays off on CPU
        assert session.amp == "off" and not torch.is_autocast_enabled("cpu")
        assert "autocast" not in session.note and not _global_forward_pre_hooks
        with pytest.raises(ValueError, match="needs a CUDA device"):
            tutorial.setup("shapes", amp="fp16", verbose=False)
    finally:
        set_global_autocast("cpu", "off")
    assert not torch.is_autocast_enabled("cpu")


def test_cpu_autocast_relays_attention_inputs_without_changing_their_values():
    from torch.nn.modules.module import _global_forward_pre_hooks

    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval().requires_grad_(False)
    tokens = torch.randn(3, 9, 64).bfloat16()
    seen = []
    attention.register_forward_pre_hook(lambda module, args: seen.append(
        (args[0].stride(), args[0] is args[1] is args[2])))
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain = attention(tokens, tokens, tokens, need_weights=False)[0]
        with autocast_for("cpu", "bf16"):
            assert len(_global_forward_pre_hooks) == 1
            relaid = attention(tokens, tokens, tokens, need_weights=False)[0]
    assert not _global_forward_pre_hooks  # removed on leaving
    torch.testing.assert_close(relaid, plain, rtol=0, atol=0)
    # The second call saw (B, L, E) views of (L, B, E)-contiguous memory, still one tensor for q, k and v.
    assert seen[0] == (tokens.stride(), True)
    assert seen[1] == ((64, 3 * 64, 1), True)
    with torch.no_grad():  # outside autocast nothing is relaid
        attention(tokens.float(), tokens.float(), tokens.float(), need_weights=False)
    assert seen[2][0] == tokens.stride()
