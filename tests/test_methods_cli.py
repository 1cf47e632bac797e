"""Every dense method through `carlib segment` and `carlib eval` with seeded real architectures (ViT-B/16 weights
written where a download puts them), the protocol card they write, `carlib compare` on real runs, and bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carlib.apps.cli import main
from carlib.datasets import open_dataset
from carlib.dense_methods import DENSE_METHODS
from carlib.evaluation.metrics import ConfusionMatrix
from carlib.labels import voc_palette
from carlib.models import data_dir
from carlib.world.export import export_voc

PHOTO = data_dir() / "photos" / "chelsea.jpg"
IDS = ("2008_000001", "2008_000002")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CARLIB_WEIGHTS_DIR", str(folder))
        assert main(["weights", "--model", "ViT-B-16", "--pretrained", "openai", "--random-seed", "0"]) == 0
    return folder


@pytest.fixture()
def openai_b16(weights_dir, monkeypatch, tmp_path) -> Path:
    """The seeded ViT-B/16, found by the tag route and nowhere else."""
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    return weights_dir / "ViT-B-16-openai" / "open_clip_model.safetensors"


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory) -> Path:
    """VOC2012's layout with two 64 x 96 crops of the bundled photo, a cat labelled in each."""
    root = tmp_path_factory.mktemp("voc")
    voc = root / "VOCdevkit" / "VOC2012"
    photo = np.asarray(Image.open(PHOTO))
    for sample_id, (top, left) in zip(IDS, ((40, 60), (90, 200))):
        crop = photo[top:top + 64, left:left + 96]
        (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(voc / "JPEGImages" / f"{sample_id}.jpg", quality=95)
        labels = np.zeros(crop.shape[:2], dtype=np.uint8)
        labels[10:50, 20:80] = 8  # cat
        png = Image.frombytes("P", (96, 64), labels.tobytes())
        png.putpalette(voc_palette().flatten().tolist())
        (voc / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        png.save(voc / "SegmentationClass" / f"{sample_id}.png")
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(IDS) + "\n")
    return root


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _eval(data: Path, out: Path, *extra: str) -> int:
    return main(["eval", "--preset", "voc", "--model", "openai", "--data-root", str(data), "--out", str(out),
                 "--no-progress", *extra])


def _miou_of_predictions(data: Path, out: Path) -> float:
    dataset = open_dataset("voc", data)
    matrix = ConfusionMatrix(21)
    for sample_id in dataset.ids():
        _, truth = dataset.load(sample_id)
        matrix.update(np.asarray(Image.open(out / "predictions" / f"{sample_id}.png")), truth)
    return matrix.miou()


@pytest.mark.slow
def test_every_method_alone_through_carlib_eval_with_its_protocol_card(openai_b16, tiny_voc, tmp_path, capsys):
    weights_sha = _sha256(openai_b16)
    runs = {}
    for method in DENSE_METHODS:
        out = tmp_path / method
        assert _eval(tiny_voc, out, "--method", method) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["method"] == method and metrics["images"] == 2 and metrics["post"] is None
        assert metrics["mIoU"] == pytest.approx(_miou_of_predictions(tiny_voc, out))
        card = metrics["protocol"]
        assert card["kind"] == "method alone" and card["method"] == method
        assert card["models"]["proposal"] == {**card["models"]["proposal"], "name": "ViT-B-16", "pretrained": "openai",
                                              "sha256": weights_sha, "activation": "QuickGELU",
                                              "family": "open_clip ViT", "seeded_random": True}
        assert card["models"]["classifier"] is None  # a method alone loads one model
        assert card["dataset"]["samples"] == 2 and card["dataset"]["name"] == "voc"
        assert card["dataset"]["ids_sha256"] == hashlib.sha256("\n".join(IDS).encode()).hexdigest()
        assert card["texts"]["class_names"]["source"] == "preset voc vocabulary"
        assert card["texts"]["background_words"][:2] == ["ground", "land"] and card["texts"]["templates"] == ["{}"]
        assert card["method_protocol"]["name"] == "carlib" and card["image"]["max_side"] == 640
        assert card["software"]["torch"] and card["device"] == "cpu" and card["autocast"] == "off"
        assert (out / "protocol.json").is_file()
        runs[method] = out
    assert "SCLIP alone (carlib protocol): mIoU" in capsys.readouterr().out
    assert main(["compare", str(runs["sclip"]), str(runs["naclip"])]) == 0
    printed = capsys.readouterr().out
    assert "**Comparable**" in printed and "| method | sclip | naclip |" in printed
    assert "| cat |" in printed and "B − A" in printed


def test_every_method_under_car_through_carlib_segment(openai_b16, tmp_path):
    image = tmp_path / "cat.png"
    Image.fromarray(np.asarray(Image.open(PHOTO))[40:104, 60:156]).save(image)
    for method in DENSE_METHODS:  # refcoco: ViT-B/16 classifies too, one template (the cheapest real preset)
        out = tmp_path / method
        assert main(["segment", str(image), "--queries", "cat, sofa", "--model", "openai", "--preset", "refcoco",
                     "--proposal-method", method, "--post", "none", "--out", str(out)]) == 0
        record = json.loads((out / "result.json").read_text())
        card = record["protocol"]
        assert card["kind"] == "CaR" and card["method"] == method
        assert card["preset_record"]["settings"]["proposal_method"] == method
        assert card["texts"]["class_names"]["labels"] == [["cat"], ["sofa"]]
        assert card["image_input"]["size"] == [64, 96] and record["num_steps"] >= 1
    alone = tmp_path / "alone"
    assert main(["segment", str(image), "--queries", "cat, sofa", "--model", "openai", "--method", "clearclip",
                 "--out", str(alone)]) == 0
    record = json.loads((alone / "result.json").read_text())
    assert record["protocol"]["kind"] == "method alone" and record["num_steps"] == 0
    with Image.open(alone / "labels.png") as labels:
        present = set(np.unique(np.asarray(labels)).tolist())
    assert present <= {0, 1, 2} and [bool(k) for k in record["kept"]] == [1 in present, 2 in present]


@pytest.mark.parametrize("arguments, message", [
    (["--window", "64", "--stride", "32"], "--window, --stride apply to a method run alone (--method NAME)"),
    (["--method", "sclip", "--post", "crf"], "a method alone has no post-processing"),
    (["--method", "sclip", "--window", "128", "--stride", "64", "--short-side", "none"],
     "the window (128 px) is larger than the image (64 x 96 px after resizing)"),
    (["--method", "sclip", "--protocol", "field", "--window", "448"],
     "the window (448 px) is larger than the image's short side after resizing (336 px)"),
    (["--method", "sclip", "--stride", "64"], "needs both a window and a stride"),
    (["--method", "sclip", "--proposal-method", "naclip"], "--method sclip runs sclip alone"),
    (["--method", "sclip", "--class-names", "sclip/cls_context60.txt"], "cls_context60.txt lists 60 labels"),
])
def test_bad_method_options_are_one_line_with_exit_2(openai_b16, tiny_voc, tmp_path, capsys, arguments, message):
    assert _eval(tiny_voc, tmp_path / "run", *arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert message in error[-1] and "Traceback" not in "\n".join(error)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_an_unknown_method_and_a_referring_preset_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(["eval", "--preset", "voc", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "sift"])
    assert exit_code.value.code == 2 and "invalid choice: 'sift'" in capsys.readouterr().err
    assert main(["eval", "--preset", "refcoco", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--method", "sclip"]) == 2
    assert "refcoco is a referring preset: use --proposal-method sclip" in capsys.readouterr().err


def test_a_convolutional_tower_refuses_the_dense_methods_in_one_line(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    import carlib

    torch.set_num_threads(2)
    conv = carlib.load_clip("convnext_tiny", None, device="cpu", seed=0)
    weights = tmp_path / "convnext_tiny.safetensors"
    save_file({key: value.contiguous() for key, value in conv.model.state_dict().items()}, str(weights))
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    for option in (["--method", "naclip"], ["--proposal-method", "sclip", "--no-clip-es", "--classifier-model",
                                             f"convnext_tiny:{weights}"]):
        assert main(["segment", str(image), "--queries", "cat", "--proposal-model", f"convnext_tiny:{weights}",
                     *option, "--out", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert "needs attention maps, and a timm ConvNeXt tower is convolutional" in error
    assert not (tmp_path / "out").exists()


def test_a_car_runs_card_resumes_and_compares_with_a_method_alone(tmp_path, capsys):
    data = export_voc(tmp_path / "shapes_voc", split="test", n=3, seed=3)
    car = tmp_path / "car"
    command = ["eval", "--preset", "shapes", "--model", "shapes", "--data-root", str(data), "--out", str(car),
               "--no-progress", "--post", "none"]
    assert main(command) == 0
    first = json.loads((car / "metrics.json").read_text())
    card = first["protocol"]
    assert card["kind"] == "CaR" and card["method"] == "gradcam" and card["post"] == {"post": "none",
                                                                                      "mask_threshold": 0.4}
    assert card["models"]["classifier"]["name"] == "shapes" and card["models"]["classifier"]["sha256"] == \
        _sha256(data_dir() / "shapes_clip" / "model.safetensors")
    assert card["texts"]["classifier_templates"][0] == "a clean origami {}." and len(card["texts"]["background_words"]) \
        == 112
    assert card["texts"]["class_names"]["labels"][0] == ["orange"] and card["image"]["max_side"] == 96
    assert card["carlib"]["version"] and "git_commit" in card["carlib"]
    assert main(command) == 0  # the same protocol resumes (here: every prediction is there)
    assert json.loads((car / "metrics.json").read_text())["mIoU"] == first["mIoU"]
    assert main([*command[:-2], "--post", "crf"]) == 2
    assert "differs in post" in capsys.readouterr().err
    alone = tmp_path / "alone"
    assert main(["eval", "--preset", "shapes", "--model", "shapes", "--data-root", str(data), "--out", str(alone),
                 "--no-progress", "--method", "clearclip"]) == 0
    assert main(["compare", str(car), str(alone)]) == 0
    printed = capsys.readouterr().out
    assert "**Comparable**" in printed and "| kind | CaR | method alone |" in printed
    assert "| models.classifier.* (8 entries) | present | — |" in printed
    # The same method on one image only is another measurement: a table, headed NOT COMPARABLE, not an error.
    one = tmp_path / "one"
    alone_command = ["eval", "--preset", "shapes", "--model", "shapes", "--data-root", str(data), "--out", str(one),
                     "--no-progress", "--method", "clearclip"]
    assert main([*alone_command, "--limit", "1"]) == 0
    assert main(["compare", str(alone), str(one)]) == 0
    printed = capsys.readouterr().out
    assert "**NOT COMPARABLE**: dataset.samples differs (3 / 1); dataset.ids_sha256 differs" in printed
    assert "| dataset.limit | — | 1 |" in printed
    # Without --limit the same folder resumes (its first prediction kept) and then measures what the full run did.
    assert main(alone_command) == 0
    assert json.loads((one / "metrics.json").read_text())["mIoU"] == \
        json.loads((alone / "metrics.json").read_text())["mIoU"]
    # A folder holding one method's predictions does not resume into another's.
    assert main([*alone_command[:-1], "naclip"]) == 2
    assert "holds predictions made under another protocol (differs in" in capsys.readouterr().err


def test_the_field_protocol_with_a_class_name_file_on_shapesworld(tmp_path, capsys):
    data = export_voc(tmp_path / "shapes_voc", split="test", n=3, seed=3)
    names = tmp_path / "names.txt"
    names.write_text("background, grass, sky, water, sand\norange\nlemon\nstarfish\nkite, flying kite\ntent\nwheel\n"
                     "balloon\ndice, die\n")
    out = tmp_path / "field"
    assert main(["eval", "--preset", "shapes", "--model", "shapes", "--data-root", str(data), "--out", str(out),
                 "--no-progress", "--method", "sclip", "--protocol", "field", "--short-side", "96", "--window", "64",
                 "--stride", "32", "--class-names", str(names), "--prob-threshold", "0.2"]) == 0
    card = json.loads((out / "metrics.json").read_text())["protocol"]
    protocol = card["method_protocol"]
    assert (protocol["name"], protocol["window"], protocol["stride"], protocol["short_side"]) == ("field", 64, 32, 96)
    assert protocol["logit_scale"] == 40.0 and len(protocol["templates"]) == 80  # SCLIP's harness defaults
    assert set(protocol["overrides"]) == {"short_side", "window", "stride", "probability_threshold", "class_names",
                                          "class_names_have_background"}
    listing = card["texts"]["class_names"]
    assert listing["first_label"] == 0 and listing["labels"][4] == ["kite", "flying kite"]
    assert card["image"]["window"] == 64 and "short side resized to 96 px" in card["image"]["resize_rule"]
    records = [json.loads(path.read_text()) for path in (out / "predictions").glob("*.json")]
    assert len(records) == 3 and all(record["windows"] == 4 for record in records)  # 96 x 96: 2 x 2 windows
    # The window may not be larger than the image: ShapesWorld's 96 px scenes and SCLIP's 224 px default window.
    assert main(["eval", "--preset", "shapes", "--model", "shapes", "--data-root", str(data), "--out",
                 str(tmp_path / "big"), "--no-progress", "--method", "sclip", "--protocol", "field"]) == 2
    assert "the window (224 px) is larger than the image (96 x 96 px after resizing)" in capsys.readouterr().err


@pytest.mark.slow
def test_the_field_protocol_on_voc_with_sclips_files(openai_b16, tiny_voc, tmp_path):
    """SCLIP's VOC-21 configuration end to end: 56 names x 80 templates (about 2 min of text encoding on CPU)."""
    out = tmp_path / "field"
    assert _eval(tiny_voc, out, "--method", "sclip", "--protocol", "field") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    protocol = metrics["protocol"]["method_protocol"]
    assert (protocol["short_side"], protocol["window"], protocol["stride"], protocol["logit_scale"]) == \
        (336, 224, 112, 65.0)
    assert metrics["protocol"]["texts"]["class_names"]["source"] == "data/class_names/sclip/cls_voc21.txt"
    assert metrics["paper_mIoU"] == 59.1 and metrics["mIoU"] == pytest.approx(_miou_of_predictions(tiny_voc, out))
