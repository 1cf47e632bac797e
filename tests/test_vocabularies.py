"""The benchmark class lists read from data/vocabularies/: counts, splits, names against second sources, errors."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

import carlib.vocabularies as vocabularies
from carlib.vocabularies import (
    ADE_150,
    ADE_847,
    COCO_OBJECT,
    CONTEXT_59,
    CONTEXT_459,
    VOC,
    VOCABULARY_DIR,
    read_class_list,
    read_stuff_ids,
)

MODULE_FILE = Path(vocabularies.__file__)


def _execute(module_file: Path, name: str):
    """Execute a copy of carlib/vocabularies.py under a throwaway module name (its data folder is
    ``data/vocabularies`` two levels above ``module_file``)."""
    spec = importlib.util.spec_from_file_location(name, module_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _checkout_at(root: Path) -> Path:
    """carlib/vocabularies.py copied into ``root/carlib/``, as a checkout at ``root`` would hold it."""
    (root / "carlib").mkdir(parents=True)
    return Path(shutil.copy(MODULE_FILE, root / "carlib" / "vocabularies.py"))


def test_each_benchmark_has_its_class_count():
    vocabularies_in_order = (VOC, COCO_OBJECT, CONTEXT_59, ADE_150, ADE_847, CONTEXT_459)
    assert [len(vocabulary) for vocabulary in vocabularies_in_order] == [20, 80, 59, 150, 847, 459]
    names = [vocabulary.name for vocabulary in vocabularies_in_order]
    assert names == ["voc", "coco_object", "context", "ade150", "ade847", "context459"]
    for vocabulary in vocabularies_in_order:
        assert len(vocabulary.display_names) == len(vocabulary)
        assert vocabulary.source.startswith("google-research/google-research clip_as_rnn/data/")


@pytest.mark.parametrize(
    "prefix, n_things, n_stuff",
    [("CONTEXT_59", 38, 21), ("ADE_150", 125, 25), ("ADE_847", 818, 29), ("CONTEXT_459", 433, 26)],
)
def test_thing_and_stuff_ids_partition_each_split_list(prefix, n_things, n_stuff):
    queries = getattr(vocabularies, f"{prefix}_CLASSES")
    things = getattr(vocabularies, f"{prefix}_THING_IDS")
    stuff = getattr(vocabularies, f"{prefix}_STUFF_IDS")
    assert (len(things), len(stuff)) == (n_things, n_stuff)
    assert sorted(things + stuff) == list(range(len(queries)))  # every class exactly once
    assert list(things) == sorted(things)


def test_stuff_groups_keep_the_references_order():
    # The reference's own order, not ascending: it sets the stuff pass's query order.
    assert vocabularies.CONTEXT_59_STUFF_IDS[-3:] == (23, 24, 41)  # door, fence, rock appended last
    assert vocabularies.ADE_150_STUFF_IDS[-5:] == (94, 91, 92, 128, 113)
    assert [CONTEXT_59.queries[i] for i in vocabularies.CONTEXT_59_STUFF_IDS[-3:]] == ["door", "fence", "rock"]


def test_names_at_ids_agree_with_the_official_lists():
    # VOC devkit classes, whole; COCO 2017 instances categories, ADE20K objectInfo150 and PASCAL-Context-59
    # names at a spread of ids (index = id - 1), typed from those lists.
    devkit = "aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person"
    assert VOC.display_names == tuple(f"{devkit} pottedplant sheep sofa train tvmonitor".split())
    coco = {1: "person", 4: "motorcycle", 28: "tie", 32: "snowboard", 63: "tv", 68: "cell phone", 79: "hair drier"}
    assert {category: COCO_OBJECT.display_names[category - 1] for category in coco} == coco
    assert COCO_OBJECT.queries[31] == "sknowboard"  # the reference's query keeps its typo
    ade = {1: "wall", 3: "sky", 13: "person", 21: "car", 139: "ashcan", 140: "fan", 150: "flag"}
    assert {class_id: ADE_150.display_names[class_id - 1] for class_id in ade} == ade
    context = {1: "airplane", 4: "bedclothes", 37: "person", 40: "plant", 55: "monitor", 59: "wood"}
    assert {class_id: CONTEXT_59.queries[class_id - 1] for class_id in context} == context


def test_a_comma_stays_inside_one_query():
    # Line k is class id k whatever its commas: the file's lines are the queries, unsplit.
    lines = (VOCABULARY_DIR / "ade150.txt").read_text(encoding="utf-8").splitlines()
    assert tuple(lines) == ADE_150.queries and len(lines) == 150
    assert ADE_150.queries[14] == "door, double, door" and VOC.queries[14] == "person with clothes,people,human"


def test_the_data_dir_override_does_not_move_the_class_lists(tmp_path, monkeypatch):
    # $CARLIB_DATA_DIR relocates models and scenes; the class lists define the code and must not follow it.
    monkeypatch.setenv("CARLIB_DATA_DIR", str(tmp_path))
    fresh = _execute(MODULE_FILE, "vocabularies_under_override")
    assert fresh.VOCABULARY_DIR == VOCABULARY_DIR
    assert fresh.ADE_847.to_dict() == ADE_847.to_dict()


def test_a_missing_class_list_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"class list .*nowhere\.txt is missing.*git checkout -- data/vocab"):
        read_class_list(tmp_path / "nowhere.txt", 3)
    # A checkout without data/vocabularies/ fails at import, naming the first file it needs.
    with pytest.raises(FileNotFoundError, match=r"data/vocabularies/voc\.txt is missing"):
        _execute(_checkout_at(tmp_path), "vocabularies_without_data")


def test_a_corrupt_file_in_the_folder_stops_the_import(tmp_path):
    shutil.copytree(VOCABULARY_DIR, tmp_path / "data" / "vocabularies")
    ade847 = tmp_path / "data" / "vocabularies" / "ade847.txt"
    lines = ade847.read_text(encoding="utf-8").splitlines()
    ade847.write_text("\n".join(lines[:100] + lines[101:]) + "\n", encoding="utf-8")  # one class lost
    with pytest.raises(ValueError, match=r"ade847\.txt has 846 lines, not one per class \(847\)"):
        _execute(_checkout_at(tmp_path), "vocabularies_with_a_lost_line")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"cat\n\ndog\n", r"line 2 \(''\) is blank"),
        (b"cat\ndog \nbird\n", r"line 2 \('dog '\) is blank or has surrounding spaces"),
        (b"cat\ndog\n", r"has 2 lines, not one per class \(3\)"),
        (b"cat\ndog\ncat\n", r"holds 'cat' more than once"),
        (b"cat\nd\xf6g\nbird\n", r"is not UTF-8"),
    ],
)
def test_a_corrupt_class_list_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "animals.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        read_class_list(path, 3)
    assert str(path) in str(error.value)


def test_class_lists_are_read_as_utf8(tmp_path):
    path = tmp_path / "accents.txt"
    path.write_bytes("café\nnaïve,plain\n".encode())
    assert read_class_list(path, 2) == ("café", "naïve,plain")


@pytest.mark.parametrize(
    "content, message",
    [
        ("1 dog\n2 bird\n", None),
        ("1 dog\n0 dog\n", r"line 2 \('0 dog'\) is not '<index> <query>'"),  # query not at that index
        ("1 dog\n3 fish\n", r"line 2 \('3 fish'\) is not"),  # index out of range
        ("dog\n", r"line 1 \('dog'\) is not"),
        ("1 dog\n1 dog\n", r"line 2 repeats index 1"),
    ],
)
def test_stuff_lists_are_checked_against_the_class_list(tmp_path, content, message):
    path = tmp_path / "animals_stuff.txt"
    path.write_text(content, encoding="utf-8")
    if message is None:
        assert read_stuff_ids(path, ("cat", "dog", "bird")) == (1, 2)
    else:
        with pytest.raises(ValueError, match=message):
            read_stuff_ids(path, ("cat", "dog", "bird"))
