"""`carlib ablate`: the table rows and a small ShapesWorld run."""

from __future__ import annotations

import re

import pytest

from carlib.evaluation.ablation import run_table, table_rows
from carlib.apps.cli import main
from carlib.presets import get_preset


def test_rows_follow_the_paper_tables():
    voc = get_preset("voc")
    recurrence = table_rows("recurrence", voc)
    assert [row.name for row in recurrence][:3] == ["no recurrence (one pass, all queries kept)",
                                                    "recurrence + Grad-CAM", "recurrence + CLIP-ES"]
    assert recurrence[0].car_options == {"recurrent": False}
    assert recurrence[1].car_options == {"use_clip_es": False}
    assert [row.car_options for row in recurrence[3:]] == [
        {"proposal_method": "maskclip", "use_clip_es": False}, {"proposal_method": "maskclip", "use_clip_es": True}]
    prompts = {row.name: row.preset_changes["prompt_kinds"] for row in table_rows("prompts", voc)}
    assert prompts["circle+blur"] == ("circle", "blur") and prompts["black"] == ("black",)
    background = {row.name: row.preset_changes.get("background") for row in table_rows("background", voc)}
    assert background["none"] == () and len(background["all groups"]) > 100
    assert len(table_rows("backbones", voc)) == 4
    with pytest.raises(ValueError, match="unknown table"):
        table_rows("fonts", voc)


@pytest.mark.slow
def test_shapes_table_runs_and_prints_markdown(tmp_path, capsys):
    assert main(["ablate", "--table", "recurrence", "--n", "3", "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "ablation-recurrence.md").read_text()
    values = re.findall(r"\| ([0-9.]+) \| (?:[0-9.]+|—) \|", markdown)
    assert len(values) == 5 and all(0 <= float(v) <= 100 for v in values)
    papers = re.findall(r"^\| ([^|]+) \| [0-9.]+ \| ([0-9.]+|—) \|$", markdown, re.M)
    assert papers == [("no recurrence (one pass, all queries kept)", "15.2"), ("recurrence + Grad-CAM", "41.1"),
                      ("recurrence + CLIP-ES", "67.6"), ("recurrence + MaskCLIP (not in the paper)", "—"),
                      ("recurrence + MaskCLIP + CLIP-ES (not in the paper)", "—")]  # the registry's, by row name
    assert "ShapesWorld, 3 held-out scenes" in capsys.readouterr().out


def test_the_shapes_backbones_table_pairs_both_families_under_both_score_rules():
    rows = table_rows("backbones", get_preset("shapes"))
    pairs = {(row.preset_changes["proposal_model"], row.preset_changes["classifier_model"], row.car_options["score_rule"])
             for row in rows}
    assert len(rows) == len(pairs) == 7
    assert ("shapes", "shapes", "as_trained") not in pairs  # two contrastive models: the rule changes nothing


@pytest.mark.slow
def test_the_shapes_backbones_table_runs_every_pairing_and_the_localisation():
    markdown = run_table("backbones", "shapes", n=1, progress=False)
    values = re.findall(r"\| ([0-9.]+) \| — \|", markdown)
    assert len(values) == 7 and all(0 <= float(v) <= 100 for v in values)
    localisation = re.findall(r"\| (shapes(?:-siglip)?) \| [^|]+ \| (softmax|sigmoid) \| ([0-9.]+) \|", markdown)
    assert [(name, kind) for name, kind, _ in localisation] == [
        ("shapes", "softmax"), ("shapes-siglip", "softmax"), ("shapes-siglip", "sigmoid")]


def test_the_sweep_moves_each_threshold_alone_around_the_preset():
    voc = get_preset("voc")  # η 0.4, θ 0.6, λ 0.4
    rows = table_rows("sweep", voc)
    changes = [row.preset_changes for row in rows]
    assert changes == [{}, {"mask_threshold": 0.3}, {"mask_threshold": 0.5}, {"confidence_threshold": 0.5},
                       {"confidence_threshold": 0.7}, {"clipes_threshold": 0.3}, {"clipes_threshold": 0.5}]
    shapes = get_preset("shapes")  # θ 0.05: 0.05 - 0.1 leaves [0, 1], so θ has one row
    thetas = [row.preset_changes for row in table_rows("sweep", shapes) if "confidence_threshold" in row.preset_changes]
    assert thetas == [{"confidence_threshold": 0.15}]


@pytest.mark.slow
def test_the_sweep_runs_on_shapesworld_and_prints_both_spreads(tmp_path):
    assert main(["ablate", "--table", "sweep", "--n", "2", "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "ablation-sweep.md").read_text()
    values = [float(v) for v in re.findall(r"\| ([0-9.]+) \| — \|", markdown)]
    assert len(values) == len(table_rows("sweep", get_preset("shapes")))
    spread = re.search(r"Our spread over these \d+ settings: ([0-9.]+)–([0-9.]+)", markdown)
    assert spread and float(spread.group(1)) == pytest.approx(min(values), abs=0.051)
    assert float(spread.group(2)) == pytest.approx(max(values), abs=0.051)
    assert "voc 67.0–67.6; coco_object 35.4–36.6" in markdown


def test_the_methods_table_runs_each_method_alone_and_under_car():
    from carlib.evaluation.methods_table import methods_markdown, methods_table
    from carlib.evaluation.shapesworld import evaluate_car_on_world, evaluate_method_on_world
    from carlib.pipeline import load_models

    rows, notes = methods_table(2, ["shapes"], progress=False, proposals=("gradcam", "naclip"))
    assert [(row.proposals, row.model) for row in rows] == [("gradcam", "shapes"), ("naclip", "shapes")]
    assert rows[0].alone is None and notes == []
    models = load_models(get_preset("shapes"), "shapes")
    alone = evaluate_method_on_world(2, "naclip", models=models, progress=False)[0]
    car = evaluate_car_on_world(2, models=models, variants=("car_crf",), progress=False,
                                car_options={"proposal_method": "naclip", "use_clip_es": True}).miou["car_crf"]
    assert rows[1].alone == alone and rows[1].car_clip_es_crf == car
    markdown = methods_markdown(rows, ["shapes-siglip: not run"], 2)
    assert f"| NACLIP | shapes | {alone * 100:.1f} | {rows[1].car_crf * 100:.1f} | {car * 100:.1f} | " \
           f"{(car - alone) * 100:+.1f} |" in markdown
    assert "| Grad-CAM (CaR's) | shapes | — |" in markdown and "- shapes-siglip: not run" in markdown


def test_the_methods_table_runs_the_models_that_load(tmp_path, capsys, monkeypatch):
    """A data folder with only the ShapesWorld CLIP: by default shapes-siglip is skipped with a note; named, it must
    load. The methods table runs on ShapesWorld only."""
    from carlib.evaluation.methods_table import METHODS_TABLE_MODELS, load_world_models
    from carlib.models import data_dir

    data = tmp_path / "data"
    data.mkdir()
    (data / "shapes_clip").symlink_to(data_dir() / "shapes_clip")
    monkeypatch.setenv("CARLIB_DATA_DIR", str(data))
    loaded, notes = load_world_models(METHODS_TABLE_MODELS, required=False)
    assert list(loaded) == ["shapes"] and loaded["shapes"].proposal.name == "shapes"
    assert len(notes) == 1 and notes[0].startswith("shapes-siglip: not run, it did not load (the ShapesWorld model "
                                                   "is missing")
    assert main(["ablate", "--table", "methods", "--models", "shapes-siglip", "--n", "1"]) == 2
    assert "ShapesWorld model is missing" in capsys.readouterr().err
    assert main(["ablate", "--table", "methods", "--models", "shapes,dino", "--n", "1"]) == 2
    assert "--models takes ShapesWorld models" in capsys.readouterr().err
    with pytest.raises(ValueError, match="methods table runs on ShapesWorld"):
        run_table("methods", "voc", n=1)
