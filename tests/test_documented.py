"""The documented-figures core: refresh, read back, refuse stale or corrupt files, rank, print beside live ones."""

from __future__ import annotations

import hashlib
import json
import types
from pathlib import Path

import pytest

from carlib.apps.cli import main
from carlib.models import data_dir
from carlib.tutorial import documented as documented_package
from carlib.tutorial.documented import (DocumentedFigures, Figure, beside_documented, documented, refresh,
                                        shapes_model_digest)

FAKE = "98_fake_notebook"


def _weights_digest() -> str:
    """The shipped weights' blake2b-64, computed here independently of the library's chunked reader."""
    return hashlib.blake2b((data_dir() / "shapes_clip" / "model.safetensors").read_bytes(), digest_size=8).hexdigest()


@pytest.fixture
def fake_notebook(monkeypatch):
    """A notebook module whose compute() returns hand-written figures and records how it was called."""
    calls = []

    def compute(n: int, seed: int) -> dict[str, Figure]:
        calls.append((n, seed))
        return {"car_miou": Figure(0.625, "mIoU of CaR"), "baseline_miou": Figure(0.125, "mIoU, one pass"),
                "steps": Figure(2.5, "mean steps")}

    module = types.SimpleNamespace(NOTEBOOK=FAKE, compute=compute)
    real = documented_package.modules()
    monkeypatch.setattr(documented_package, "modules", lambda: {**real, FAKE: module})
    return calls


def _stored(**values: float) -> DocumentedFigures:
    return DocumentedFigures(notebook=FAKE, figures={name: Figure(value, f"what {name}") for name, value in values.items()},
                             scenes=200, seed=0, split="test", model_digest="0" * 16, command="carlib documented refresh",
                             seconds=1.0)


def test_model_digest_is_the_weights_file_hash():
    assert shapes_model_digest() == _weights_digest()


def test_refresh_of_a_real_notebook_on_one_scene_reads_back(tmp_path):
    path = refresh("06_post_processing", n=1, seed=0, out_dir=tmp_path)
    assert path == tmp_path / "06_post_processing.json"
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # nothing half-written left beside it
    raw = json.loads(path.read_text())
    stored = documented("06_post_processing", directory=tmp_path)
    assert (stored.scenes, stored.seed, stored.split) == (1, 0, "test")
    assert stored.model_digest == _weights_digest()
    assert stored.command == "carlib documented refresh 06_post_processing --n 1"
    assert set(stored.figures) == {"car_none_miou", "car_crf_miou", "car_sam_miou"}
    for name, entry in raw["figures"].items():
        assert stored[name] == entry["value"]
        assert 0.0 <= stored[name] <= 1.0
    assert "1 held-out ShapesWorld test scenes (seed 0)" in stored.source


def test_refresh_passes_n_and_seed_and_stores_exact_values(tmp_path, fake_notebook):
    refresh(FAKE, n=3, seed=7, out_dir=tmp_path)
    assert fake_notebook == [(3, 7)]
    stored = documented(FAKE, directory=tmp_path)
    assert {name: stored[name] for name in stored.figures} == {"car_miou": 0.625, "baseline_miou": 0.125,
                                                                "steps": 2.5}
    assert stored.figures["steps"].what == "mean steps"
    assert (stored.scenes, stored.seed) == (3, 7)


def test_refresh_refuses_unknown_notebook_and_empty_sample(tmp_path, fake_notebook):
    with pytest.raises(ValueError, match=r"no documented figures are defined for '99_nope'.*04_recurrence"):
        refresh("99_nope", n=1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="at least 1 scene"):
        refresh(FAKE, n=0, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == [] and fake_notebook == []


def test_missing_file_names_the_refresh_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="carlib documented refresh 04_recurrence"):
        documented("04_recurrence", directory=tmp_path)


def test_file_from_other_weights_is_stale(tmp_path, fake_notebook):
    path = refresh(FAKE, n=2, seed=0, out_dir=tmp_path)
    record = json.loads(path.read_text())
    record["model_digest"] = "0123456789abcdef"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=rf"other ShapesWorld weights.*carlib documented refresh {FAKE}"):
        documented(FAKE, directory=tmp_path)
    assert documented(FAKE, directory=tmp_path, check_model=False)["car_miou"] == 0.625


@pytest.mark.parametrize("corrupt", [
    lambda record: "{not json",
    lambda record: json.dumps([1, 2]),
    lambda record: json.dumps({key: value for key, value in record.items() if key != "scenes"}),
    lambda record: json.dumps({**record, "figures": {"car_miou": {"value": 0.5}}}),
    lambda record: json.dumps({**record, "figures": {"car_miou": {"value": "0.5", "what": "mIoU"}}}),
    lambda record: json.dumps({**record, "figures": ["car_miou"]}),
    lambda record: json.dumps({**record, "format": 99}),
], ids=["not-json", "a-list", "no-scenes", "figure-without-what", "string-value", "figures-a-list", "future-format"])
def test_corrupt_file_names_the_fix(tmp_path, fake_notebook, corrupt):
    path = refresh(FAKE, n=1, seed=0, out_dir=tmp_path)
    path.write_text(corrupt(json.loads(path.read_text())))
    with pytest.raises(ValueError, match=rf"not a documented-figures file.*carlib documented refresh {FAKE}"):
        documented(FAKE, directory=tmp_path)


def test_undecodable_bytes_name_the_fix(tmp_path, fake_notebook):
    path = refresh(FAKE, n=1, seed=0, out_dir=tmp_path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=f"carlib documented refresh {FAKE}"):
        documented(FAKE, directory=tmp_path)


def test_cli_refresh_then_show_prints_every_figure(tmp_path, fake_notebook, capsys):
    assert main(["documented", "refresh", FAKE, "--n", "4", "--seed", "1", "--directory", str(tmp_path)]) == 0
    assert fake_notebook == [(4, 1)]
    assert str(tmp_path / f"{FAKE}.json") in capsys.readouterr().out
    assert main(["documented", "show", FAKE, "--directory", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{FAKE}: 4 held-out ShapesWorld test scenes (seed 1)" in out
    assert "car_miou" in out and "0.6250" in out and "mIoU of CaR" in out
    assert "baseline_miou" in out and "0.1250" in out
    assert "STALE" not in out


def test_cli_show_marks_a_stale_file(tmp_path, fake_notebook, capsys):
    path = refresh(FAKE, n=1, seed=0, out_dir=tmp_path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "model_digest": "feedfeedfeedfeed"}))
    assert main(["documented", "show", FAKE, "--directory", str(tmp_path)]) == 0
    assert f"STALE" in capsys.readouterr().out


def test_cli_unknown_notebook_is_a_readable_error(tmp_path, capsys):
    assert main(["documented", "show", "99_nope", "--directory", str(tmp_path)]) == 2
    assert "no documented figures are defined for ['99_nope']" in capsys.readouterr().err
    assert main(["documented", "refresh", "04_recurrence", "--n", "0", "--directory", str(tmp_path)]) == 2
    assert "--n must be at least 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_ranked_orders_by_value():
    stored = _stored(none=0.52, default=0.57, man_made=0.62, surfaces=0.49)
    assert stored.ranked(["none", "default", "man_made", "surfaces"]) == ["man_made", "default", "none", "surfaces"]
    assert stored.ranked(["none", "man_made"], descending=False) == ["none", "man_made"]
    with pytest.raises(KeyError, match="known: \\['default', 'man_made', 'none', 'surfaces'\\]"):
        stored.ranked(["none", "terrestrial"])


def test_beside_documented_prints_both_values_and_sample_sizes():
    stored = _stored(car_miou=0.622, single_miou=0.14)
    table = beside_documented({"car_miou": 0.7812, "single_miou": 0.1449}, stored, live_scenes=10,
                              labels={"car_miou": "CaR + CRF"})
    lines = table.splitlines()
    assert lines[0] == "| | this run (10 scenes) | documented (200 held-out scenes) |"
    assert "| CaR + CRF | 0.781 | 0.622 |" in lines
    assert "| what single_miou | 0.145 | 0.140 |" in lines  # no label given: the stored description
    assert lines[-1].startswith("Documented figures: 200 held-out ShapesWorld test scenes (seed 0)")
    percent = beside_documented({"car_miou": 0.7812}, stored, live_scenes=10, fmt="{:.0%}".format)
    assert "| what car_miou | 78% | 62% |" in percent.splitlines()
