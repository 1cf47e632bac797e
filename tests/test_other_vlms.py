"""Other VLMs end to end: weights written where a download goes, `carlib segment` with each family in each stage,
the activation each tag needs, the families table, and the one-line errors of issue 21."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import carlib
from carlib.apps.cli import main as carlib_main
from carlib.models import write_seeded_weights

FAMILY_RUNS = {  # name:tag, extra options (convolutional towers have no attention for CLIP-ES)
    "EVA02-B-16:merged2b_s8b_b131k": [],
    "MobileCLIP-S2:datacompdr": ["--no-clip-es"],
    "convnext_base:laion400m_s13b_b51k": ["--no-clip-es"],
}
LARGE_FAMILY_RUNS = {  # 1.5-1.8 GB of seeded weights each: behind the slow marker
    "PE-Core-B-16:meta": [],
    "ViT-B-16-SigLIP2:webli": ["--tokenizer", "{tokenizer}"],
}


def write_tokenizer(folder: Path) -> Path:
    """A small sentencepiece-style (Unigram) Hugging Face tokenizer trained here, offline, on a few hundred words."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    words = ("a photo of the cat dog red car sky grass wall clean origami tree road person bird boat bottle chair "
             "table plant sheep sofa train monitor").split()
    sentences = [" ".join(words[(i * 7) % len(words):][:6]) for i in range(300)]
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.train_from_iterator(sentences, trainers.UnigramTrainer(
        vocab_size=80, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}))
    return folder


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "scene.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 256, size=(80, 112, 3), dtype=np.uint8)).save(path)
    return path


def _segment_with(spec: str, extra: list[str], photo: Path, out: Path, weights: Path, monkeypatch,
                  capsys) -> dict:
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(weights))
    name, tag = spec.split(":")
    write_seeded_weights(name, tag, seed=0)
    status = carlib_main(["segment", str(photo), "--queries", "cat, dog, sky", "--proposal-model", name,
                          "--classifier-model", spec, "--post", "none", "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "SEEDED RANDOM" in captured.err  # the weights came from where a download goes, and say what they are
    record = json.loads((out / "result.json").read_text())
    assert (out / "labels.png").is_file() and (out / "overlay.png").is_file()
    return record


@pytest.mark.parametrize("spec", FAMILY_RUNS)
def test_segment_runs_each_family_in_both_stages(spec, photo, tmp_path, monkeypatch, capsys):
    record = _segment_with(spec, FAMILY_RUNS[spec], photo, tmp_path / "out", tmp_path / "weights", monkeypatch, capsys)
    bundle_family = carlib.load_clip(spec.split(":")[0], None).family
    for role in ("proposal", "classifier"):
        assert record["models"][role]["name"] == spec.split(":")[0]
        assert record["models"][role]["family"] == bundle_family
    assert record["models"]["classifier"]["pretrained"] == spec.split(":")[1]


@pytest.mark.slow
@pytest.mark.parametrize("spec", LARGE_FAMILY_RUNS)
def test_segment_runs_the_large_families_in_both_stages(spec, photo, tmp_path, monkeypatch, capsys):
    tokenizer = write_tokenizer(tmp_path / "tokenizer")
    extra = [option.format(tokenizer=tokenizer) for option in LARGE_FAMILY_RUNS[spec]]
    record = _segment_with(spec, extra, photo, tmp_path / "out", tmp_path / "weights", monkeypatch, capsys)
    assert record["models"]["proposal"]["name"] == spec.split(":")[0]


def test_a_siglip_model_encodes_text_with_a_tokenizer_folder(tmp_path):
    folder = write_tokenizer(tmp_path / "tok")
    bundle = carlib.load_clip("ViT-B-16-SigLIP2", None, tokenizer=folder)
    ids = bundle.tokenizer(["a photo of a cat.", "dog"])
    assert ids.shape == (2, 64) and not bool((ids[0] == ids[1]).all())
    embedded = carlib.encode_texts(bundle, ["cat", "dog"])
    assert embedded.shape == (2, 768)
    np.testing.assert_allclose(embedded.norm(dim=-1).numpy(), 1.0, atol=1e-5)
    assert bundle.training_loss == "sigmoid" and bundle.logit_bias is not None


def test_siglip_without_a_tokenizer_is_one_line_saying_how_to_get_it(tmp_path, monkeypatch, capsys, photo):
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(carlib.WeightsNotFoundError, match="tokenizer.*save_pretrained.*--tokenizer"):
        carlib.models._tokenizer_for("ViT-B-16-SigLIP2", None)
    random = carlib.load_clip("ViT-B-16-SigLIP2", None)  # random weights load; their first text says why not
    with pytest.raises(carlib.WeightsNotFoundError, match="timm/ViT-B-16-SigLIP2"):
        carlib.encode_texts(random, ["cat"])
    status = carlib_main(["segment", str(photo), "--queries", "cat", "--proposal-model", "ViT-B-16-SigLIP2:webli",
                          "--tokenizer", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and "tokenizer folder not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("tag, activation", [("metaclip_400m", "QuickGELU"), ("dfn2b", "QuickGELU"),
                                             ("laion2b_s34b_b88k", "GELU"), ("openai", "QuickGELU")])
def test_each_tag_gets_the_activation_its_metadata_says(tag, activation, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    assert carlib_main(["weights", "--model", "ViT-B-16", "--pretrained", tag, "--random-seed", "1"]) == 0
    assert (tmp_path / f"ViT-B-16-{tag}" / "open_clip_model.safetensors").is_file()
    bundle = carlib.load_clip("ViT-B-16", tag)
    assert bundle.activation == activation
    assert f"{activation} (the pretrained tag says so" in bundle.weights_note
    block = bundle.model.visual.transformer.resblocks[0].mlp.gelu
    assert type(block).__name__ == ("QuickGELU" if activation == "QuickGELU" else "GELU")


def test_carlib_weights_writes_any_family_and_its_default_tag(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    assert carlib_main(["weights", "--model", "MobileCLIP-S2", "--random-seed", "0"]) == 0
    assert "datacompdr" in capsys.readouterr().out
    assert (tmp_path / "MobileCLIP-S2-datacompdr" / "open_clip_model.safetensors").is_file()
    bundle = carlib.load_clip("MobileCLIP-S2", "datacompdr")
    assert bundle.seeded_random and bundle.mean == (0.0, 0.0, 0.0)  # the tag's own normalisation


def test_a_checkpoint_of_another_family_is_named_in_one_line(tmp_path, monkeypatch, capsys, photo):
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    other = write_seeded_weights("convnext_base", "laion400m_s13b_b51k", seed=0)
    status = carlib_main(["segment", str(photo), "--queries", "cat", "--proposal-model", f"ViT-B-16:{other}",
                          "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "holds a convolutional timm vision tower" in err and "'ViT-B-16' is an open_clip ViT" in err


def test_clip_es_asked_of_a_convolutional_tower_is_one_line(tmp_path, monkeypatch, capsys, photo):
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    write_seeded_weights("convnext_base", "laion400m_s13b_b51k", seed=0)
    status = carlib_main(["segment", str(photo), "--queries", "cat", "--proposal-model", "convnext_base",
                          "--model", "shapes", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]  # after the lines saying which models run
    assert last.startswith("carlib segment: error:") and "CLIP-ES needs attention maps" in last
    assert "--no-clip-es" in last
    assert not (tmp_path / "o").exists()


def test_an_unknown_family_is_one_line_pointing_to_carlib_models(tmp_path, capsys, photo):
    status = carlib_main(["segment", str(photo), "--queries", "cat", "--proposal-model", "NoSuchNet-9",
                          "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and "unknown model 'NoSuchNet-9'" in err and "carlib models" in err


def test_carlib_models_lists_every_family_with_its_stages(capsys):
    assert carlib_main(["models"]) == 0
    text = capsys.readouterr().out
    for family in carlib.towers.FAMILIES:
        assert family.name in text and family.examples[0] in text
    assert "MobileCLIP (FastViT): MobileCLIP-S2" in text
    assert "stages: Grad-CAM yes · CLIP-ES no · dense maps no · classifier yes" in text
    assert carlib_main(["models", "--markdown"]) == 0
    table = capsys.readouterr().out
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert table.split("\n\n")[0] in readme  # README's families table is the command's own


def test_the_shapesworld_families_mix_in_one_run(photo, tmp_path, capsys):
    if not (carlib.models.data_dir() / "shapes_siglip" / "model.safetensors").is_file():
        pytest.fail("data/shapes_siglip is missing: the second ShapesWorld model must ship (git checkout data/)")
    status = carlib_main(["segment", str(photo), "--queries", "orange, kite", "--model", "shapes",
                          "--proposal-model", "shapes-siglip", "--out", str(tmp_path / "o")])
    assert status == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "o" / "result.json").read_text())
    assert record["models"]["proposal"]["family"] == "timm ViT"
    assert record["models"]["classifier"]["family"] == "open_clip ViT"
