"""The real-weights path end to end: seeded ViT-B/16 and ViT-L/14 weights where a download puts them.

No OpenAI weights can be downloaded here, so `carlib weights --random-seed` writes the real
architectures' seeded random weights as `$CARLIB_WEIGHTS_DIR/<name>-openai/open_clip_model.safetensors`.
Everything downstream (tag lookup, the file format, QuickGELU, the preset's two models, the
command lines, a notebook) then runs exactly as it does for a user with real weights; only
the numbers mean nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carlib.apps.cli import main
from carlib.datasets import open_dataset
from carlib.evaluation.metrics import ConfusionMatrix
from carlib.models import data_dir
from carlib.labels import voc_palette

ROOT = Path(__file__).resolve().parent.parent
PHOTO = data_dir() / "photos" / "chelsea.jpg"
VOC_CAT = 8  # "cat" in VOC's class ids


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CARLIB_WEIGHTS_DIR", str(folder))
        for name in ("ViT-B-16", "ViT-L-14"):
            assert main(["weights", "--model", name, "--pretrained", "openai", "--random-seed", "0"]) == 0
    return folder


@pytest.fixture()
def openai_weights(weights_dir, monkeypatch, tmp_path) -> Path:
    """The seeded weights, found by the tag route and nowhere else (no hub, no download)."""
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    return weights_dir


def test_the_weights_land_where_a_download_would(weights_dir):
    for name in ("ViT-B-16", "ViT-L-14"):
        assert (weights_dir / f"{name}-openai" / "open_clip_model.safetensors").is_file()


def test_segment_with_openai_models_on_a_bundled_photo(openai_weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(PHOTO), "--queries", "cat, sofa", "--model", "openai", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "ViT-B-16 proposals, ViT-L-14 classifier" in err and "SEEDED RANDOM" in err
    assert err.count("QuickGELU (the pretrained tag says so; OpenAI trained with QuickGELU)") == 2
    record = json.loads((out / "result.json").read_text())
    assert record["models"]["proposal"] == {"name": "ViT-B-16", "pretrained": "openai", "activation": "QuickGELU",
                                          "family": "open_clip ViT"}
    assert record["models"]["classifier"]["name"] == "ViT-L-14"
    assert record["preset"]["name"] == "voc" and record["image_size"] == [300, 451]
    assert record["working_size"] == [300, 451]  # a benchmark-sized photo runs at its own size
    with Image.open(out / "labels.png") as labels:
        assert labels.size == (451, 300)
        assert set(np.unique(np.asarray(labels))) <= {0, 1, 2}
    assert sum(record["kept"]) >= 1  # the recurrence always keeps the argmax


def _tiny_voc(root: Path) -> Path:
    """VOC2012's layout with two crops of the bundled photo, the cat labelled."""
    voc = root / "VOCdevkit" / "VOC2012"
    photo = np.asarray(Image.open(PHOTO))
    for sample_id, (top, left) in (("2008_000001", (40, 60)), ("2008_000002", (90, 200))):
        crop = photo[top:top + 144, left:left + 192]
        (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(voc / "JPEGImages" / f"{sample_id}.jpg", quality=95)
        labels = np.zeros(crop.shape[:2], dtype=np.uint8)
        labels[20:120, 30:170] = VOC_CAT
        labels[-2:] = 255
        png = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
        png.putpalette(voc_palette().flatten().tolist())
        (voc / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        png.save(voc / "SegmentationClass" / f"{sample_id}.png")
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2008_000001\n2008_000002\n")
    return root


@pytest.mark.slow
def test_eval_voc_with_openai_models_on_a_tiny_voc_folder(openai_weights, tmp_path, capsys):
    data = _tiny_voc(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["eval", "--preset", "voc", "--model", "openai", "--data-root", str(data), "--out", str(out),
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 2 and metrics["errors"] == [] and "ViT-L-14" in metrics["models"]
    assert metrics["paper_mIoU"] == 67.6
    dataset = open_dataset("voc", data)
    matrix = ConfusionMatrix(21)
    for sample_id in dataset.ids():
        _, truth = dataset.load(sample_id)
        matrix.update(np.asarray(Image.open(out / "predictions" / f"{sample_id}.png")), truth)
    assert metrics["mIoU"] == pytest.approx(matrix.miou())
    assert "QuickGELU" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_notebook_runs_on_openai_models(openai_weights, tmp_path):
    import papermill

    source = tmp_path / "00_quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "00_quickstart.ipynb", source)
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(source), str(executed), parameters={"model": "openai"}, kernel_name="python3",
                               progress_bar=False, cwd=str(ROOT / "notebooks"))
    cells = json.loads(executed.read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    assert "OpenAI CLIP: ViT-B-16 proposals, ViT-L-14 classifier" in text and "SEEDED RANDOM" in text
    assert "seeded RANDOM weights in the place of OpenAI's" in text  # the notebook's own words say so too
    assert "recurrence steps:" in text and "cat:" in text
    assert any("image/png" in o.get("data", {}) for c in cells if c["cell_type"] == "code" for o in c["outputs"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["openai", "shapes"])
def test_a_12_megapixel_phone_photo_comes_back_whole_and_upright(openai_weights, tmp_path, model):
    """The benchmark's photo (benchmarks/bench_photo.py) through the command line; `make test-slow` runs it."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_photo import make_phone_photo

    photo = tmp_path / "phone.jpg"
    stored_width, stored_height = make_phone_photo(photo, 12.0)
    out = tmp_path / "out"
    preset = "voc" if model == "openai" else "shapes"
    assert main(["segment", str(photo), "--queries", "cat, dog", "--model", model, "--preset", preset,
                 "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["image_size"] == [stored_width, stored_height]  # upright: the stored sides swap
    assert max(record["working_size"]) == (640 if model == "openai" else 96)
    with Image.open(out / "labels.png") as labels:
        assert labels.size == (stored_height, stored_width)
