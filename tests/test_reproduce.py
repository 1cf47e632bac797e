"""`carlib reproduce`: the paper's tables as data, their commands, and the report beside the published numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from carlib.apps.cli import build_parser, main
from carlib.evaluation.ablation import table_rows
from carlib.evaluation.reproduce import DATASET_DOCS, TABLE_NUMBERS, fill, get_table, paper_tables
from carlib.presets import get_preset
from tests.test_methods_cli import tiny_voc  # noqa: F401 (a fixture: VOC2012's layout, two small photos)

REPO = Path(__file__).resolve().parents[1]
SHARED_PAPER_NUMBERS = REPO.parent / "shared" / "reference" / "paper-numbers.md"

# A verbatim copy of the project's reference file (tests/paper-numbers.md), so a fresh clone (where ../shared/ does
# not exist) parses the same text; test_the_copy_is_the_reference_file keeps it identical wherever the reference is.
PAPER_NUMBERS_MD = (REPO / "tests" / "paper-numbers.md").read_text()

# How the paper's phrases name the rows of `carlib ablate` (the only knowledge this test shares with the code).
ABLATION_NAMES = {"no recurrence": "no recurrence (one pass, all queries kept)", "mask (black)": "black"}
BACKBONE_NAMES = {"B/16": "ViT-B-16", "L/14": "ViT-L-14"}


def _section(text: str, title_start: str) -> str:
    match = re.search(rf"^## {re.escape(title_start)}.*?$(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"paper-numbers.md has no section starting {title_start!r}"
    return match.group(1)


def _markdown_rows(section: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]


def parse_paper_numbers(text: str) -> dict[tuple[str, str], object]:
    """Every published number as {(table, row label): value}, read from paper-numbers.md alone."""
    numbers: dict[tuple[str, str], object] = {}
    table1 = _section(text, "Zero-shot")
    header, values = _markdown_rows(table1)
    numbers.update({("1", name): float(value) for name, value in zip(header, values)})
    sam = re.search(r"CaR \+ SAM: (.*?)\.\n", table1).group(1)
    for name, value in re.findall(r"([\w-]+) (\d+\.\d+)", sam):
        numbers[("1", f"{name}, CaR + SAM")] = float(value)
    maskclip = re.search(r"MaskCLIP (.*?)\.\n", table1, re.S).group(1)
    for name, value in re.findall(r"([\w-]+) (\d+\.\d+)", maskclip):
        numbers[("1", f"{name}, MaskCLIP (reference point)")] = float(value)

    ablations = " ".join(_section(text, "Ablations").split())
    for number in ("2", "4", "6"):
        body = re.search(rf"\(Table {number}\): (.*?)\.(?: -|$)", ablations).group(1)
        for name, value in re.findall(r"([A-Za-z][\w+()\- ]*?) (\d+\.\d+)", body.replace("; ", ", ")):
            name = name.strip(" ,")
            numbers[(number, ABLATION_NAMES.get(name, name))] = float(value)
    backbones = re.search(r"\(Table 3\), VOC / COCO-Object: (.*?)\.(?: -|$)", ablations).group(1)
    for proposal, classifier, voc, coco in re.findall(r"(\S+)-(\S+) (\d+\.\d+) / (\d+\.\d+)", backbones):
        pair = f"{BACKBONE_NAMES[proposal]} proposals, {BACKBONE_NAMES[classifier]} classifier"
        numbers[("3", f"VOC-21: {pair}")] = float(voc)
        numbers[("3", f"COCO-Object: {pair}")] = float(coco)
    sweep = re.search(r"\(Table 5\): VOC (\d+\.\d+)–(\d+\.\d+), COCO (\d+\.\d+)–(\d+\.\d+)", ablations).groups()
    numbers[("5", "VOC-21: spread of the η/θ/λ sweep")] = (float(sweep[0]), float(sweep[1]))
    numbers[("5", "COCO-Object: spread of the η/θ/λ sweep")] = (float(sweep[2]), float(sweep[3]))

    referring = _section(text, "Referring")
    header, *rows = _markdown_rows(referring)
    columns, dataset = [], ""
    for cell in header[1:]:
        if " " in cell:
            dataset, cell = cell.split(" ", 1)
        columns.append(f"{dataset} {cell}")
    for method, *values in rows:
        suffix = "" if method == "CaR" else f", {method} (reference point)"
        numbers.update({("7", column + suffix): float(value) for column, value in zip(columns, values)})
    numbers[("7", "GRES (gRefCOCO)")] = float(re.search(r"GRES: (\d+\.\d+)", referring).group(1))
    davis = re.search(r"Ref-DAVIS17: J&F (\d+\.\d+) \(J (\d+\.\d+), F (\d+\.\d+)\)", referring)
    for position, measure in enumerate(("J&F", "J", "F"), start=1):
        numbers[("7", f"Ref-DAVIS17 {measure}")] = float(davis.group(position))
    return numbers


def _reference_text() -> str:
    return SHARED_PAPER_NUMBERS.read_text() if SHARED_PAPER_NUMBERS.is_file() else PAPER_NUMBERS_MD


def test_the_copy_is_the_reference_file():
    if SHARED_PAPER_NUMBERS.is_file():
        assert SHARED_PAPER_NUMBERS.read_text() == PAPER_NUMBERS_MD
    # The parse is not empty and is what the file says in two hand-read places.
    parsed = parse_paper_numbers(PAPER_NUMBERS_MD)
    assert parsed[("1", "ADE-847")] == 8.1 and parsed[("7", "RefCOCOg val(G)")] == 36.63
    assert parsed[("3", "COCO-Object: ViT-L-14 proposals, ViT-B-16 classifier")] == 14.1


def test_every_published_number_is_in_the_registry_and_matches_the_paper():
    paper = parse_paper_numbers(_reference_text())
    registry = {(table.number, row.label): row.published for table in paper_tables().values() for row in table.rows
                if row.published is not None}
    assert registry == paper
    # Supplementary Table B repeats two Table 1 columns; they agree.
    table_b = _section(_reference_text(), "Without background")
    assert float(re.search(r"VOC-20 (\d+\.\d+)", table_b).group(1)) == registry[("1", "VOC-20")]
    assert float(re.search(r"Context-59 (\d+\.\d+)", table_b).group(1)) == registry[("1", "Context-59")]


def test_ablate_reads_each_rows_published_number_from_the_registry():
    """`carlib ablate` prints the paper's number beside each row: the registry's row of the same name, per preset."""
    from carlib.evaluation.registry import published_ablation, published_spreads

    for number, name in (("2", "recurrence"), ("4", "prompts"), ("6", "background")):
        registry = {row.label: row.published for row in get_table(number).rows if row.published is not None}
        assert published_ablation(name) == registry, number
        assert set(published_ablation(name)) <= {row.name for row in table_rows(name, get_preset("voc"))}
    assert published_ablation("backbones") == {
        "ViT-B-16 proposals, ViT-B-16 classifier": 54.1, "ViT-B-16 proposals, ViT-L-14 classifier": 67.6,
        "ViT-L-14 proposals, ViT-B-16 classifier": 50.6, "ViT-L-14 proposals, ViT-L-14 classifier": 57.6}
    assert published_ablation("backbones", "coco_object")["ViT-B-16 proposals, ViT-L-14 classifier"] == 36.6
    assert published_spreads("sweep") == {"voc": (67.0, 67.6), "coco_object": (35.4, 36.6)}
    assert published_ablation("sweep") == {} and published_ablation("methods") == {}


@pytest.mark.parametrize("number", TABLE_NUMBERS)
def test_every_listed_command_parses_with_carlibs_own_parser(number):
    parser = build_parser()
    commands = get_table(number).commands()
    assert commands
    for command in commands:
        argv = fill(command, data_root="/data", out="/runs")
        assert not any("{" in part for part in argv), argv
        args = parser.parse_args(argv)
        assert args.command == argv[0] == command.app and str(args.data_root) == "/data"
        assert str(args.out).startswith("/runs/table")
        # What reproduce runs (the values) is what the printed line means to the parser.
        for name, value in command.values(data_root="/data", out="/runs").items():
            assert str(getattr(args, name)) == str(value), (name, argv)


def test_each_command_writes_where_the_report_reads():
    """eval writes OUT/metrics.json; ablate writes row i to OUT/<table>-<i>/metrics.json (ablation.run_table)."""
    for table in paper_tables().values():
        for row in table.rows:
            if row.command is None:
                assert row.metrics is None and row.note
                continue
            out = str(row.command.option("out")).replace("{out}/", "")
            if row.command.app == "eval":
                assert row.metrics == f"{out}/metrics.json"
            else:
                ablation = str(row.command.option("table"))
                preset = get_preset(str(row.command.option("preset")))
                names = [r.name for r in table_rows(ablation, preset)]
                if "*" in row.metrics:
                    assert row.metrics == f"{out}/{ablation}-*/metrics.json"
                else:
                    index = names.index(row.label.split(": ", 1)[-1])
                    assert row.metrics == f"{out}/{ablation}-{index}/metrics.json"


def test_new_presets_are_referenced_by_name_and_exist():
    presets = {name for table in paper_tables().values() for name in table.presets}
    assert {"ade847", "context459", "gres"} <= presets
    for name in presets:
        assert get_preset(name).name == name


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_dataset_pointers_name_existing_sections_of_docs_datasets():
    anchors = _anchors((REPO / "docs" / "datasets.md").read_text())
    for table in paper_tables().values():
        for name in table.presets:
            page, anchor = DATASET_DOCS[name].split("#")
            assert page == "docs/datasets.md" and anchor in anchors, (name, anchor)


def test_list_prints_commands_and_runs_nothing(tmp_path, capsys):
    assert main(["reproduce", "--table", "1", "--list", "--data-root", str(tmp_path / "data"),
                 "--out", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert f"carlib eval --preset ade847 --data-root {tmp_path / 'data'} --out {tmp_path / 'runs'}/table1/ade847" \
        in printed
    assert "docs/datasets.md#pascal-context-459" in printed and "--post sam --sam-checkpoint" in printed
    assert not (tmp_path / "runs").exists()
    assert main(["reproduce", "--dry-run"]) == 0  # every table
    printed = capsys.readouterr().out
    assert all(f"### Table {number}:" in printed for number in TABLE_NUMBERS)


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["reproduce"]) == 2
    assert "--table N is required" in capsys.readouterr().err
    assert main(["reproduce", "--table", "4", "--data-root", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reproduce", "--table", "9"])
    with pytest.raises(ValueError, match="choose one of"):
        get_table(9)


def _report_rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] != "row":
            rows[cells[0]] = cells[1:]
    return rows


def test_real_data_report_reads_the_runs_metrics(tmp_path, capsys):
    """Fake runs under --out: each row's mIoU comes from its own file; a sweep is reported as its spread."""
    runs = tmp_path / "runs"
    fake = {"circle": 0.651, "blur": 0.6625, "circle+blur": 0.676}  # contour, gray, black: not run yet
    names = [row.name for row in table_rows("prompts", get_preset("voc"))]
    for name, miou in fake.items():
        folder = runs / "table4" / f"prompts-{names.index(name)}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"preset": "voc", "mIoU": miou, "paper_mIoU": 67.6}))
    assert main(["reproduce", "--table", "4", "--report-only", "--out", str(runs)]) == 0
    rows = _report_rows(capsys.readouterr().out)
    assert rows["circle"][:2] == ["66.9", "65.1"] and rows["blur"][:2] == ["66.4", "66.2"]
    assert rows["circle+blur"][:2] == ["67.6", "67.6"]
    assert rows["contour"][:2] == ["66.0", "—"] and "no table4/prompts-1/metrics.json yet" in rows["contour"][2]
    saved = json.loads((runs / "reproduce-table4.json").read_text())
    assert {row["label"]: row["ours"] for row in saved["rows"]}["circle"] == pytest.approx(65.1)

    for index, miou in enumerate((0.671, 0.668, 0.6755)):
        folder = runs / "table5" / "voc" / f"sweep-{index}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"mIoU": miou}))
    # With --data-root, commands whose metrics exist are not run again (running them here would fail: no data).
    (tmp_path / "data").mkdir()
    assert main(["reproduce", "--table", "5", "--data-root", str(tmp_path / "data"), "--out", str(runs)]) != 0
    rows = _report_rows(capsys.readouterr().out)
    assert rows["VOC-21: spread of the η/θ/λ sweep"][:2] == ["67.0–67.6", "66.8–67.5"]
    assert rows["COCO-Object: spread of the η/θ/λ sweep"][1] == "—"  # its command ran and failed: no dataset


def test_referring_report_reads_gres_giou_when_no_miou(tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / "table7" / "gres").mkdir(parents=True)
    (runs / "table7" / "gres" / "metrics.json").write_text(json.dumps({"gIoU": 0.171, "cIoU": 0.2}))
    (runs / "table7" / "refcoco_testA").mkdir(parents=True)
    (runs / "table7" / "refcoco_testA" / "metrics.json").write_text(json.dumps({"mIoU": 0.3412, "oIoU": 0.3}))
    assert main(["reproduce", "--table", "7", "--report-only", "--out", str(runs)]) == 0
    rows = _report_rows(capsys.readouterr().out)
    assert rows["GRES (gRefCOCO)"][:2] == ["16.8", "17.1"] and "gIoU" in rows["GRES (gRefCOCO)"][2]
    assert rows["RefCOCO testA"][:2] == ["35.36", "34.1"]
    assert rows["RefCOCO testB"][1] == "—"
    # Ref-DAVIS17's three rows read their own keys of one run's metrics.json.
    (runs / "table7" / "refdavis17").mkdir(parents=True)
    (runs / "table7" / "refdavis17" / "metrics.json").write_text(json.dumps({"J": 0.25, "F": 0.31, "J&F": 0.28,
                                                                             "paper_mIoU": 30.34}))
    assert main(["reproduce", "--table", "7", "--report-only", "--out", str(runs)]) == 0
    rows = _report_rows(capsys.readouterr().out)
    assert rows["Ref-DAVIS17 J&F"][:2] == ["30.34", "28.0"] and rows["Ref-DAVIS17 J"][:2] == ["28.15", "25.0"]
    assert rows["Ref-DAVIS17 F"][:2] == ["32.53", "31.0"]


def test_shapesworld_run_puts_ours_beside_the_published_number(tmp_path, capsys):
    """Table 4 on one scene; the 'black' row must be exactly CaR + CRF with black prompts on that scene."""
    from carlib.evaluation.shapesworld import evaluate_car_on_world

    assert main(["reproduce", "--table", "4", "--n", "1", "--out", str(tmp_path)]) == 0
    rows = _report_rows(capsys.readouterr().out)
    expected = evaluate_car_on_world(1, preset=get_preset("shapes").replace(prompt_kinds=("black",)),
                                     variants=("car_crf",), progress=False).miou["car_crf"]
    assert rows["black"][:2] == ["61.8", f"{expected * 100:.1f}"]
    saved = json.loads((tmp_path / "reproduce-table4.json").read_text())
    assert len(saved["rows"]) == 6
    assert all(row["published"] is not None and row["ours"] is not None for row in saved["rows"])
    assert "ShapesWorld analogue, 1 held-out test scenes" in saved["source"]
    assert (tmp_path / "reproduce-table4.md").read_text().count("| ShapesWorld") == 6


def test_rows_with_the_same_settings_share_one_run():
    from carlib.evaluation.reproduce import WorldRuns

    runs = WorldRuns(1)  # loads nothing until a run needs the model
    shapes = get_preset("shapes")
    by_name = {(table, row.name): row for table in ("recurrence", "prompts", "background")
               for row in table_rows(table, shapes)}
    preset_rows = [("recurrence", "recurrence + CLIP-ES"), ("prompts", "blur"), ("background", "all groups")]
    assert len({runs._key(by_name[name]) for name in preset_rows}) == 1
    others = [name for name in by_name if name not in preset_rows]
    assert len({runs._key(by_name[name]) for name in others} | {runs._key(by_name[preset_rows[0]])}) == \
        len(others) + 1
    assert runs._models is None


def test_prefetch_in_worker_processes_gives_the_numbers_of_a_plain_run():
    from carlib.evaluation.reproduce import WorldRuns

    black = [row for row in table_rows("prompts", get_preset("shapes")) if row.name == "black"]
    fetched = WorldRuns(1, variants=("car_crf",))
    fetched.prefetch(black, workers=2)
    plain = WorldRuns(1, variants=("car_crf",))
    assert fetched.row(black[0]) == plain.row(black[0])
    assert fetched.headline().miou["car_crf"] == plain.headline().miou["car_crf"]


def test_rankings_are_printed_from_the_numbers():
    from carlib.tutorial.paper_tables import best, paper_rankings, ranking_text

    assert ranking_text({"a": 0.5, "b": 0.62, "c": 0.6201, "d": 0.1}) == "c (62.0) = b (62.0) > a (50.0) > d (10.0)"
    assert best({"a": 0.5, "b": 0.62, "c": 0.6201}) == ["c", "b"]
    assert ranking_text({"x": 61.8, "y": 67.6}, percent=True) == "y (67.6) > x (61.8)"
    paper = parse_paper_numbers(_reference_text())
    table4 = paper_rankings(("4",))
    assert table4.startswith("- Table 4") and table4.index("circle+blur (67.6)") < table4.index("black (61.8)")
    assert f"black ({paper[('4', 'black')]:.1f})" in table4


def test_table_1s_maskclip_rows_and_the_other_methods_table_have_commands(capsys):
    from carlib.evaluation.reproduce import METHODS_TABLE, EvalRun, published_for_run, registry_tables

    maskclip = [row for row in get_table(1).rows if row.method == "MaskCLIP"]
    assert [row.published for row in maskclip] == [38.8, 20.6, 23.6]
    assert all(row.command.argv()[-4:] == ["--method", "maskclip", "--protocol", "field"] for row in maskclip)
    methods = registry_tables()[METHODS_TABLE]
    assert set(registry_tables()) == {*TABLE_NUMBERS, METHODS_TABLE} and get_table("methods") == methods
    published = {(row.method, row.label.split(" ", 1)[1]): row.published for row in methods.rows}
    assert published[("SCLIP", "VOC-21")] == published_for_run(EvalRun("voc", method="sclip"))["headline"] == 59.1
    assert published[("NACLIP", "COCO-Object")] == 33.2 and published[("ClearCLIP", "Context-60")] == 32.6
    parser = build_parser()
    for row in methods.rows:
        args = parser.parse_args(fill(row.command, data_root="/data", out="/runs"))
        assert args.method == row.method.lower() and args.protocol == "field"
        assert row.metrics == str(row.command.option("out")).replace("{out}/", "") + "/metrics.json"
        assert args.without_background == row.label.endswith(("VOC-20", "Context-59"))
    assert main(["reproduce", "--table", "methods", "--list"]) == 0
    printed = capsys.readouterr().out
    assert "### Other methods:" in printed and "--method naclip --protocol field --without-background" in printed
    assert "- voc: proposals ViT-B-16 (openai)\n" in printed  # a method alone needs no classifier


def test_the_other_methods_table_on_shapesworld(tmp_path, capsys):
    assert main(["reproduce", "--table", "methods", "--n", "2", "--out", str(tmp_path)]) == 0
    rows = _report_rows(capsys.readouterr().out)
    for title in ("SCLIP", "ClearCLIP", "NACLIP"):
        published, ours, source = rows[f"{title} VOC-21"]
        assert float(ours) > 0 and source == f"ShapesWorld, {title.lower()} alone"
        assert rows[f"{title} Context-60"][1] == "—"
    assert (tmp_path / "reproduce-tablemethods.md").is_file()


def test_reproduce_runs_each_eval_command_through_eval_itself_and_reports_its_numbers(tiny_voc, tmp_path, capsys):
    """Real-data mode runs a table's commands by calling `carlib eval`'s function with the registry's values:
    the result equals running the printed command; commands that cannot run (no dataset, no SAM checkpoint)
    fail with one line and leave their rows empty."""
    data = tiny_voc
    runs = tmp_path / "runs"
    assert main(["reproduce", "--table", "1", "--data-root", str(data), "--out", str(runs), "--model", "shapes",
                 "--limit", "1"]) == 1  # some rows' datasets are missing
    printed = capsys.readouterr().out
    assert f"$ carlib eval --preset voc --data-root {data} --out {runs}/table1/voc21 --model shapes --limit 1" in printed
    assert "table1/coco_object --model shapes --limit 1` failed: COCO-Object: not found" in printed
    assert "its rows stay empty" in printed
    rows = _report_rows(printed)
    by_reproduce = json.loads((runs / "table1" / "voc21" / "metrics.json").read_text())
    assert rows["VOC-21"][1] == f"{by_reproduce['mIoU'] * 100:.1f}" and rows["COCO-Object"][1] == "—"
    direct = tmp_path / "direct"
    assert main(["eval", "--preset", "voc", "--data-root", str(data), "--out", str(direct), "--model", "shapes",
                 "--limit", "1", "--no-progress"]) == 0
    by_eval = json.loads((direct / "metrics.json").read_text())
    for key in ("mIoU", "confusion_matrix", "per_class_iou", "paper_mIoU", "post", "images"):
        assert by_reproduce[key] == by_eval[key], key
    assert by_reproduce["paper_mIoU"] == 67.6
