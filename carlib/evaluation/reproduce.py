"""`carlib reproduce`: every table of the paper as data, with the commands that reproduce it.

Each :class:`PaperTable` lists its published numbers (mIoU %, from
``paper-numbers.md``), the exact ``carlib eval`` / ``carlib ablate`` commands
that measure them on real data, the datasets (presets, with their section of
docs/datasets.md) and the weights they need. Two ways to fill the "ours"
column:

- **ShapesWorld** (offline, the default): the table's analogue on held-out
  ShapesWorld scenes, through :func:`carlib.evaluation.shapesworld.evaluate_car_on_world`
  and the rows of :mod:`carlib.evaluation.ablation` (:class:`WorldRuns`).
  Same code path, different model and world: for orientation, not equality.
- **Real data**: each command's ``metrics.json`` under ``--out``
  (:func:`read_real_numbers`), after running the commands that have none yet.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from carlib.evaluation.ablation import Row, table_rows
from carlib.presets import get_preset

Published = float | tuple[float, float]
"""A published mIoU %, or the (low, high) spread of a sweep."""

PLACEHOLDERS = {"data_root": "DATA_ROOT", "out": "runs/reproduce", "sam_checkpoint": "sam_hq_vit_h.pth"}
"""What ``{data_root}``, ``{out}`` and ``{sam_checkpoint}`` in a command stand for when nothing is given."""

DATASET_DOCS = {
    "voc": "docs/datasets.md#pascal-voc-2012",
    "context": "docs/datasets.md#pascal-context-59--60",
    "coco_object": "docs/datasets.md#coco-object",
    "ade150": "docs/datasets.md#ade20k-150",
    "ade847": "docs/datasets.md#ade20k-847",
    "context459": "docs/datasets.md#pascal-context-459",
    "refcoco": "docs/datasets.md#refcoco-refcoco-refcocog",
    "refcoco+": "docs/datasets.md#refcoco-refcoco-refcocog",
    "refcocog": "docs/datasets.md#refcoco-refcoco-refcocog",
    "gres": "docs/datasets.md#grefcoco-gres",
    "refdavis17": "docs/datasets.md#ref-davis17",
}
"""Where docs/datasets.md says how to get and lay out each preset's benchmark."""

SAM_WEIGHTS = (
    "HQ-SAM ViT-H, `sam_hq_vit_h.pth` (the supplementary's reference [4]; "
    "`sam_vit_h_4b8939.pth`, the original SAM, is accepted too)"
)


@dataclass(frozen=True)
class Command:
    """One ``carlib eval`` or ``carlib ablate`` run of the registry, as option values.

    :meth:`argv` prints it as a user types it; ``carlib reproduce`` runs it by calling the command's
    function with :meth:`values` (no command line in between), and :func:`published_for_run` reads the
    published number of an eval run from it.

    Attributes:
        app: ``"eval"`` or ``"ablate"``.
        options: (option name as a Python identifier, value) in the order printed; ``True`` is a flag.
            Values may hold the ``{data_root}``, ``{out}`` and ``{sam_checkpoint}`` placeholders.
    """

    app: str
    options: tuple[tuple[str, str | bool], ...]

    def option(self, name: str) -> str | bool | None:
        """The value of option ``name`` (``None`` where the command does not give it)."""
        return dict(self.options).get(name)

    def values(self, **placeholders: str | None) -> dict[str, str | bool]:
        """The options with their placeholders replaced (by :data:`PLACEHOLDERS` where none is given)."""
        chosen = {name: (placeholders.get(name) or default) for name, default in PLACEHOLDERS.items()}
        return {name: value.format(**chosen) if isinstance(value, str) else value for name, value in self.options}

    def argv(self, **placeholders: str | None) -> list[str]:
        """The command line after ``carlib``, placeholders replaced."""
        parts = [self.app]
        for name, value in self.values(**placeholders).items():
            flag = "--" + name.replace("_", "-")
            parts += [flag] if value is True else [flag, str(value)]
        return parts


@dataclass(frozen=True)
class WorldAnalogue:
    """What stands in for a published row on ShapesWorld.

    Attributes:
        kind: ``"headline"`` (a variant of :func:`evaluate_car_on_world`),
            ``"ablation"`` (a row of :func:`carlib.evaluation.ablation.table_rows`),
            ``"spread"`` (min–max over every row of an ablation table) or
            ``"method"`` (a dense method alone, :func:`carlib.evaluation.shapesworld.evaluate_method_on_world`).
        name: the variant (``car_crf``, ``car_sam``), the ablation table or the method.
        row: the ablation row's name (``kind="ablation"`` only).
    """

    kind: str
    name: str
    row: str = ""


@dataclass(frozen=True)
class PaperRow:
    """One published number and how carlib measures it.

    Attributes:
        label: the row and column as the paper names them ("VOC-21", "circle").
        published: mIoU % (or a (low, high) spread) as published.
        command: the :class:`Command` that measures it, with ``{data_root}``/``{out}`` placeholders;
            None when carlib cannot measure it (another method's reference point).
        metrics: where the command leaves this row's ``metrics.json``, relative
            to ``--out``; a glob for spreads.
        world: its ShapesWorld analogue, if any.
        method: whose number it is (CaR unless it is a reference point).
        note: why a row has no command, or what else to know.
        metric: the ``metrics.json`` key holding this row's number as a fraction (None: ``mIoU``, else ``gIoU``).
    """

    label: str
    published: Published | None
    command: Command | None = None
    metrics: str | None = None
    world: WorldAnalogue | None = None
    method: str = "CaR"
    note: str = ""
    metric: str | None = None


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper: its rows, what they need, and notes."""

    number: str
    title: str
    rows: tuple[PaperRow, ...]
    presets: tuple[str, ...]
    weights: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    world_note: str = ""
    proposal_only: bool = False  # its commands load only the presets' proposal models (a method alone)

    def commands(self) -> list[Command]:
        """The distinct commands of the table, in row order."""
        seen: list[Command] = []
        for row in self.rows:
            if row.command is not None and row.command not in seen:
                seen.append(row.command)
        return seen


def _eval(preset: str, out: str, **options: str | bool) -> Command:
    return Command(
        "eval", (("preset", preset), ("data_root", "{data_root}"), ("out", f"{{out}}/{out}"), *options.items())
    )


def _ablate(table: str, preset: str, out: str) -> Command:
    return Command(
        "ablate", (("table", table), ("preset", preset), ("data_root", "{data_root}"), ("out", f"{{out}}/{out}"))
    )


def _ablation_rows(
    number: str,
    table: str,
    published: dict[str, float],
    *,
    preset: str = "voc",
    out: str | None = None,
    label_prefix: str = "",
) -> list[PaperRow]:
    """One :class:`PaperRow` per row of an ablation table (run on ``preset``), published where the paper has it.

    ``carlib ablate`` writes row ``i`` of a real-data table to ``OUT/<table>-<i>/``.
    """
    out = out or f"table{number}"
    command = _ablate(table, preset, out)
    shapes_rows = {row.name for row in table_rows(table, get_preset("shapes"))}
    rows = []
    for index, row in enumerate(table_rows(table, get_preset(preset))):
        world = WorldAnalogue("ablation", table, row.name) if row.name in shapes_rows else None
        rows.append(
            PaperRow(
                label_prefix + row.name, published.get(row.name), command, f"{out}/{table}-{index}/metrics.json", world
            )
        )
    unknown = set(published) - {row.name for row in table_rows(table, get_preset(preset))}
    if unknown:
        raise ValueError(
            f"table {number}: published rows {sorted(unknown)} are not rows of `carlib ablate --table "
            f"{table}`; fix the names in carlib/evaluation/reproduce.py"
        )
    return rows


def _table1() -> PaperTable:
    without_background: dict[str, str | bool] = {"without_background": True}
    columns: list[tuple[str, float, str, str, dict[str, str | bool]]] = [  # label, published, preset, out, options
        ("VOC-20", 91.4, "voc", "voc20", without_background),
        ("VOC-21", 67.6, "voc", "voc21", {}),
        ("COCO-Object", 36.6, "coco_object", "coco_object", {}),
        ("Context-59", 39.5, "context", "context59", without_background),
        ("Context-60", 30.5, "context", "context60", {}),
        ("ADE-150", 17.7, "ade150", "ade150", {}),
        ("ADE-847", 8.1, "ade847", "ade847", {}),
        ("Context-459", 13.9, "context459", "context459", {}),
    ]
    rows = [
        PaperRow(
            label,
            value,
            _eval(preset, f"table1/{out}", **extra),
            f"table1/{out}/metrics.json",
            WorldAnalogue("headline", "car_crf") if label == "VOC-21" else None,
        )
        for label, value, preset, out, extra in columns
    ]
    sam = [
        ("VOC-21", 70.2, "voc", "voc21_sam"),
        ("COCO-Object", 37.6, "coco_object", "coco_object_sam"),
        ("Context-60", 31.1, "context", "context60_sam"),
    ]
    rows += [
        PaperRow(
            f"{label}, CaR + SAM",
            value,
            _eval(preset, f"table1/{out}", post="sam", sam_checkpoint="{sam_checkpoint}"),
            f"table1/{out}/metrics.json",
            WorldAnalogue("headline", "car_sam") if label == "VOC-21" else None,
        )
        for label, value, preset, out in sam
    ]
    maskclip = [
        ("VOC-21", 38.8, "voc", "voc21_maskclip"),
        ("COCO-Object", 20.6, "coco_object", "coco_object_maskclip"),
        ("Context-60", 23.6, "context", "context60_maskclip"),
    ]
    rows += [
        PaperRow(
            f"{label}, MaskCLIP (reference point)",
            value,
            _eval(preset, f"table1/{out}", method="maskclip", protocol="field"),
            f"table1/{out}/metrics.json",
            WorldAnalogue("method", "maskclip") if label == "VOC-21" else None,
            method="MaskCLIP",
            note="MaskCLIP alone (`--method maskclip`, no recurrence) under the field's protocol as "
            "ClearCLIP's harness runs it; the paper quotes this number without saying which protocol "
            "produced it. `--proposal-method maskclip` keeps CaR's recurrence (Table 2's extra rows)",
        )
        for label, value, preset, out in maskclip
    ]
    return PaperTable(
        "1",
        "Zero-shot semantic segmentation (VOC-20 and Context-59 are also supplementary Table B)",
        tuple(rows),
        ("voc", "coco_object", "context", "ade150", "ade847", "context459"),
        weights=("SAM rows: " + SAM_WEIGHTS,),
        notes=("CaR + dense CRF unless a row says SAM",),
        world_note="ShapesWorld has one benchmark (8 classes + background, VOC-21-like): only the VOC-21 rows "
        "have an analogue; region snapping to colour regions stands in for SAM",
    )


def _table2() -> PaperTable:
    published = {
        "no recurrence (one pass, all queries kept)": 15.2,
        "recurrence + Grad-CAM": 41.1,
        "recurrence + CLIP-ES": 67.6,
    }
    return PaperTable(
        "2",
        "Recurrence and proposal method (VOC-21)",
        tuple(_ablation_rows("2", "recurrence", published)),
        ("voc",),
        notes=("the MaskCLIP rows are carlib's, not the paper's",),
    )


def _table3() -> PaperTable:
    published = {"voc": (54.1, 67.6, 50.6, 57.6), "coco_object": (15.9, 36.6, 14.1, 32.5)}
    rows: list[PaperRow] = []
    for preset, values in published.items():
        names = [row.name for row in table_rows("backbones", get_preset(preset))]
        rows += _ablation_rows(
            "3",
            "backbones",
            dict(zip(names, values)),
            preset=preset,
            out=f"table3/{preset}",
            label_prefix=f"{'VOC-21' if preset == 'voc' else 'COCO-Object'}: ",
        )
    return PaperTable(
        "3",
        "Proposal and classifier backbones (VOC-21 / COCO-Object)",
        tuple(rows),
        ("voc", "coco_object"),
        weights=("every pair needs both OpenAI ViT-B-16 and ViT-L-14: `make weights`",),
        world_note="ShapesWorld has two small models of different families, not two sizes of one, so "
        "no row here has an analogue; `carlib ablate --table backbones` pairs the two "
        "families in either stage (docs/shapesworld.md)",
    )


def _table4() -> PaperTable:
    published = {"circle": 66.9, "contour": 66.0, "blur": 66.4, "gray": 66.1, "black": 61.8, "circle+blur": 67.6}
    return PaperTable(
        "4",
        "Visual prompts (VOC-21; black is the paper's 'mask')",
        tuple(_ablation_rows("4", "prompts", published)),
        ("voc",),
    )


def _table5() -> PaperTable:
    rows = []
    for preset, label, spread in (("voc", "VOC-21", (67.0, 67.6)), ("coco_object", "COCO-Object", (35.4, 36.6))):
        rows.append(
            PaperRow(
                f"{label}: spread of the η/θ/λ sweep",
                spread,
                _ablate("sweep", preset, f"table5/{preset}"),
                f"table5/{preset}/sweep-*/metrics.json",
                WorldAnalogue("spread", "sweep") if preset == "voc" else None,
            )
        )
    return PaperTable(
        "5",
        "Hyper-parameter sweep (η, θ, λ)",
        tuple(rows),
        ("voc", "coco_object"),
        notes=(
            "`carlib ablate --table sweep` moves η, θ and λ by 0.1 either way from the preset, "
            "one at a time; the paper's exact grid is not published",
        ),
    )


def _table6() -> PaperTable:
    published = {"none": 64.3, "all groups": 67.6}
    return PaperTable("6", "Background words (VOC-21)", tuple(_ablation_rows("6", "background", published)), ("voc",))


def _table7() -> PaperTable:
    car = {"refcoco": (33.57, 35.36, 30.51), "refcoco+": (34.22, 36.03, 31.02), "refcocog": (36.67, 36.57, 36.63)}
    ovseg = {"refcoco": (22.58, 19.38, 25.63), "refcoco+": (19.13, 15.74, 25.30), "refcocog": (27.87, 29.09, 28.31)}
    splits = {
        "refcoco": ("val", "testA", "testB"),
        "refcoco+": ("val", "testA", "testB"),
        "refcocog": ("val", "test", "val"),
    }
    shown = {"refcoco": "RefCOCO", "refcoco+": "RefCOCO+", "refcocog": "RefCOCOg"}
    column_names = {"refcocog": ("val", "test(U)", "val(G)")}
    rows: list[PaperRow] = []
    for preset, values in car.items():
        for position, (split, value) in enumerate(zip(splits[preset], values)):
            column = column_names.get(preset, splits[preset])[position]
            if preset == "refcocog" and column == "val(G)":
                folder = "table7/refcocog_val_google"
                rows.append(
                    PaperRow(
                        f"{shown[preset]} {column}",
                        value,
                        _eval(preset, folder, split="val", split_by="google"),
                        f"{folder}/metrics.json",
                    )
                )
                continue
            folder = f"table7/{preset}_{split}"
            rows.append(
                PaperRow(
                    f"{shown[preset]} {column}",
                    value,
                    _eval(preset, folder, split=split),
                    f"{folder}/metrics.json",
                )
            )
    rows.append(
        PaperRow(
            "GRES (gRefCOCO)",
            16.8,
            _eval("gres", "table7/gres"),
            "table7/gres/metrics.json",
            note="read as the `mIoU` of metrics.json, else its `gIoU` (mean IoU per expression)",
        )
    )
    davis = _eval("refdavis17", "table7/refdavis17")
    for label, value, metric in (
        ("Ref-DAVIS17 J&F", 30.34, "J&F"),
        ("Ref-DAVIS17 J", 28.15, "J"),
        ("Ref-DAVIS17 F", 32.53, "F"),
    ):
        rows.append(
            PaperRow(
                label,
                value,
                davis,
                "table7/refdavis17/metrics.json",
                metric=metric,
                note="every frame, the mean over the four expression sets (docs/datasets.md, Ref-DAVIS17)",
            )
        )
    for preset, values in ovseg.items():
        for column, value in zip(column_names.get(preset, splits[preset]), values):
            rows.append(
                PaperRow(
                    f"{shown[preset]} {column}, OVSeg (reference point)",
                    value,
                    method="OVSeg",
                    note="another method's number",
                )
            )
    return PaperTable(
        "7",
        "Referring segmentation, mIoU (and supplementary Table A); Ref-DAVIS17 in J, F, J&F",
        tuple(rows),
        ("refcoco", "refcoco+", "refcocog", "gres", "refdavis17"),
        notes=(
            "no SAM for referring segmentation (supplementary section 6)",
            "Ref-DAVIS17: the paper gives no video setting; refdavis17 runs RefCOCOg's",
        ),
        world_note="ShapesWorld scenes have no referring benchmark, so this table has no analogue here; "
        "the Ref-DAVIS17 rows have one in the moving ShapesWorld (`carlib world export "
        "--video`, docs/shapesworld.md)",
    )


METHODS_TABLE = "methods"
"""The registry's table of the field's other training-free methods (not in the CaR paper): ``--table methods``."""

FIELD_METHODS = ("sclip", "clearclip", "naclip")
"""The methods of :data:`METHODS_TABLE` (MaskCLIP's published numbers are Table 1's reference rows)."""

METHOD_SOURCES: dict[str, str] = {
    "maskclip": "CaR's Table 1 (MaskCLIP's row, quoted by CaR from earlier work; the protocol behind it is not stated)",
    "sclip": "the SCLIP paper (ECCV 2024), Table 1, without PAMR; its README gives 59.63 / 31.74 / 33.52 / 81.54 / "
    "34.46 for VOC-21 / Context-60 / COCO-Object / VOC-20 / Context-59 with the repository's default setup",
    "clearclip": "the ClearCLIP paper (ECCV 2024), Table 1, ViT-B/16; its README gives its numbers only as an image",
    "naclip": "the NACLIP paper (WACV 2025), without PAMR; its README gives 64.07 / 34.99 / 36.19 / 83.03 / 38.35 "
    "for VOC-21 / Context-60 / COCO-Object / VOC-20 / Context-59 with PAMR on (its default), which carlib "
    "does not implement",
}
"""Where each dense method's published numbers (its rows in :func:`registry_tables`) come from."""


def _methods_table() -> PaperTable:
    from carlib.dense_methods import METHOD_SPECS

    published = {  # mIoU % with ViT-B/16, the method alone (METHOD_SOURCES)
        "sclip": {"voc": 59.1, "context": 30.4, "coco_object": 30.5, "voc20": 80.4, "context59": 34.2},
        "clearclip": {"voc": 51.8, "context": 32.6, "coco_object": 33.0, "voc20": 80.9, "context59": 35.9},
        "naclip": {"voc": 58.9, "context": 32.2, "coco_object": 33.2, "voc20": 79.7, "context59": 35.2},
    }
    without_background: dict[str, str | bool] = {"without_background": True}
    columns: list[tuple[str, str, str, dict[str, str | bool]]] = [
        ("VOC-21", "voc", "voc", {}),
        ("Context-60", "context", "context", {}),
        ("COCO-Object", "coco_object", "coco_object", {}),
        ("VOC-20", "voc20", "voc", without_background),
        ("Context-59", "context59", "context", without_background),
    ]
    rows = []
    for method in FIELD_METHODS:
        title = METHOD_SPECS[method].title
        for label, key, preset, extra in columns:
            folder = f"methods/{method}_{key}"
            rows.append(
                PaperRow(
                    f"{title} {label}",
                    published[method][key],
                    _eval(preset, folder, method=method, protocol="field", **extra),
                    f"{folder}/metrics.json",
                    WorldAnalogue("method", method) if key == "voc" else None,
                    method=title,
                    note=METHOD_SOURCES[method],
                )
            )
    return PaperTable(
        METHODS_TABLE,
        "Other training-free methods alone, mIoU with ViT-B/16 (not in the CaR paper)",
        tuple(rows),
        ("voc", "context", "coco_object"),
        notes=(
            "each method alone (`--method NAME`, per-pixel argmax, no recurrence, no PAMR) under `--protocol "
            "field`: its official harness's short side, sliding windows, logit scale, class-name files and "
            "probability threshold (docs/datasets.md, The field's protocol)",
            "published: "
            + "; ".join(f"{METHOD_SPECS[method].title}: {METHOD_SOURCES[method]}" for method in FIELD_METHODS),
            "under CaR: `carlib eval --preset voc --proposal-method NAME` (no published number); on ShapesWorld "
            "every method alone and under CaR + CRF: `carlib ablate --table methods --n 200`",
        ),
        world_note="only the VOC-21 rows have a ShapesWorld analogue: the method alone with carlib's protocol on "
        "held-out scenes; every method alone and under CaR + CRF, with both ShapesWorld models, is "
        "`carlib ablate --table methods --n 200` (docs/shapesworld.md, notebook 02)",
        proposal_only=True,
    )


def registry_tables() -> dict[str, PaperTable]:
    """The paper's tables (:func:`paper_tables`) and the other methods' (:data:`METHODS_TABLE`)."""
    return {**paper_tables(), METHODS_TABLE: _methods_table()}


def paper_tables() -> dict[str, PaperTable]:
    """Every table of the paper, keyed by its number ("1".."7")."""
    tables = (_table1(), _table2(), _table3(), _table4(), _table5(), _table6(), _table7())
    return {table.number: table for table in tables}


TABLE_NUMBERS = ("1", "2", "3", "4", "5", "6", "7")


def get_table(number: str | int) -> PaperTable:
    """The table called ``number``; a ``ValueError`` naming the known ones otherwise."""
    key = str(number)
    if key == METHODS_TABLE:
        return _methods_table()
    if key not in TABLE_NUMBERS:
        raise ValueError(
            f"the paper has no table {number!r} here; choose one of {', '.join(TABLE_NUMBERS)} "
            f"(or {METHODS_TABLE}: the other methods)"
        )
    return paper_tables()[key]


@dataclass(frozen=True)
class EvalRun:
    """What decides which published number an eval run is compared with.

    Attributes:
        preset: the preset's name.
        split: the split evaluated (referring, GRES and video presets only; a semantic row's split is the
            benchmark's evaluation split).
        without_background: the VOC-20 / Context-59 setting.
        post: the post-processing (``"sam"`` matches Table 1's CaR + SAM rows; anything else its CRF rows).
        split_by: whose split of the refs (``"google"`` matches RefCOCOg val(G)).
        method: a dense method run alone, or None for CaR.
    """

    preset: str
    split: str = "val"
    without_background: bool = False
    post: str | None = None
    split_by: str | None = None
    method: str | None = None

    @classmethod
    def of(cls, command: Command) -> EvalRun:
        """The run an eval :class:`Command` makes (a command without ``--split`` runs ``val``)."""

        def text(name: str) -> str | None:
            value = command.option(name)
            return value if isinstance(value, str) else None

        return cls(
            preset=str(command.option("preset")),
            split=text("split") or "val",
            without_background=command.option("without_background") is True,
            post=text("post"),
            split_by=text("split_by"),
            method=text("method"),
        )

    def compares_with(self, other: EvalRun, semantic: bool) -> bool:
        """True if the two runs measure the same published number (a semantic run's split is not compared)."""
        return (
            self.preset == other.preset
            and self.method == other.method
            and self.without_background == other.without_background
            and (self.post == "sam") == (other.post == "sam")
            and (self.split_by == "google") == (other.split_by == "google")
            and (semantic or self.split == other.split)
        )


def published_for_run(run: EvalRun, semantic: bool = True) -> dict[str, float]:
    """The registry's published numbers (%) for an eval run, keyed by metric.

    The key is the row's ``metric`` (``"J&F"``, ``"J"``, ``"F"`` for Ref-DAVIS17), else ``"headline"``
    (mIoU, or GRES's number); empty where nothing published matches. The registry
    (:func:`registry_tables`) is the only place the numbers are written.

    Arguments:
        run: the run's settings (:class:`EvalRun`).
        semantic: False for referring, GRES and video presets, whose split must match too.
    """
    found: dict[str, float] = {}
    for table in registry_tables().values():
        for row in table.rows:
            if row.command is None or row.command.app != "eval" or not isinstance(row.published, float):
                continue
            if run.compares_with(EvalRun.of(row.command), semantic):
                found.setdefault(row.metric or "headline", row.published)
    return found


def fill(command: Command, **values: str | None) -> list[str]:
    """A command's line after ``carlib``, its placeholders replaced (by :data:`PLACEHOLDERS` where ``values``
    gives none)."""
    return command.argv(**values)


def weights_needed(table: PaperTable) -> list[str]:
    """The CLIP checkpoints its presets load (read from the presets), then the table's other weights."""
    needed: list[str] = []
    for name in table.presets:
        try:
            preset = get_preset(name)
        except (KeyError, ValueError):
            needed.append(f"{name}: preset not defined in this checkout")
            continue
        line = f"{name}: proposals {preset.proposal_model} ({preset.proposal_pretrained})"
        if not table.proposal_only:
            line += f", classifier {preset.classifier_model} ({preset.classifier_pretrained})"
        needed.append(line)
    return needed + list(table.weights)


# --- the "ours" column --------------------------------------------------------------------------------------


@dataclass
class Measured:
    """Our number for one row: a value (mIoU %), a spread, or nothing, and where it came from."""

    value: Published | None = None
    source: str = ""


def format_number(value: Published | None, decimals: int = 1) -> str:
    """A percentage or a spread for a table cell ("—" for none)."""
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return f"{value[0]:.{decimals}f}–{value[1]:.{decimals}f}"
    return f"{value:.{decimals}f}"


def published_decimals(value: Published) -> int:
    """As many decimals as the paper prints (Table 7 has two, the others one)."""
    first = value[0] if isinstance(value, tuple) else value
    return 2 if round(first, 1) != round(first, 2) else 1


def _read_metric(path: Path, metric: str | None = None) -> tuple[float | None, str]:
    record = json.loads(path.read_text())
    for key in (metric,) if metric else ("mIoU", "gIoU"):
        if isinstance(record.get(key), (int, float)):
            return float(record[key]) * 100, key
    return None, ""


def read_real_numbers(table: PaperTable, out_dir: Path) -> dict[str, Measured]:
    """Our numbers from the ``metrics.json`` files the table's commands wrote under ``out_dir``.

    A row whose file is missing gets no value and says which file it waits for.
    """
    found: dict[str, Measured] = {}
    for row in table.rows:
        if row.metrics is None:
            found[row.label] = Measured(source=row.note or "no command")
            continue
        paths = sorted(Path(p) for p in glob.glob(str(Path(out_dir) / row.metrics)))
        read = [(path, *_read_metric(path, row.metric)) for path in paths]
        values = [(path, value, key) for path, value, key in read if value is not None]
        if not values:
            found[row.label] = Measured(source=f"no {row.metrics} yet")
        elif "*" in row.metrics:
            numbers = [value for _, value, _ in values]
            found[row.label] = Measured((min(numbers), max(numbers)), f"{len(numbers)} runs, {row.metrics}")
        else:
            _path, value, key = values[0]
            found[row.label] = Measured(value, f"{row.metrics}" + ("" if key in ("mIoU", row.metric) else f" ({key})"))
    return found


def missing_commands(table: PaperTable, out_dir: Path) -> list[Command]:
    """The table's commands that have not yet written every ``metrics.json`` they are expected to."""
    missing = []
    for command in table.commands():
        for row in table.rows:
            if row.command == command and row.metrics is not None and not glob.glob(str(Path(out_dir) / row.metrics)):
                missing.append(command)
                break
    return missing


HEADLINE = ("single_pass_crf", "car_none", "car_crf", "oracle_crf", "car_sam")
"""The :func:`evaluate_car_on_world` variants a :class:`WorldRuns` measures (Table 1's analogues and baselines)."""


class WorldRuns:
    """CaR + dense CRF on ``n`` held-out ShapesWorld scenes, one run per distinct setting.

    Rows that amount to the same settings (Table 2's "recurrence + CLIP-ES",
    Table 4's "blur" and Table 6's "all groups" are all the ``shapes`` preset)
    are measured once and shared.
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int | None = None,
        models=None,
        progress: bool = False,
        variants: Sequence[str] = HEADLINE,
    ) -> None:
        from carlib.evaluation.shapesworld import EVAL_SEED

        if n < 1:
            raise ValueError(f"n (ShapesWorld scenes per row) must be at least 1, got {n}")
        self.n = n
        self.seed = EVAL_SEED if seed is None else seed
        self.preset = get_preset("shapes")
        self._models = models
        self.progress = progress
        self.variants = tuple(variants)
        self._miou: dict[str, float] = {}
        self._headline = None

    @property
    def models(self):
        """The ShapesWorld CLIPs, loaded on first use (a prefetching parent never needs them)."""
        if self._models is None:
            from carlib.pipeline import load_models

            self._models = load_models(self.preset, "shapes")
        return self._models

    def method(self, name: str) -> float:
        """mIoU in [0, 1] of a dense method alone (carlib's protocol) on the scenes (measured once)."""
        key = f"method alone: {name}"
        if key not in self._miou:
            from carlib.evaluation.shapesworld import evaluate_method_on_world

            self._miou[key] = evaluate_method_on_world(
                self.n, name, seed=self.seed, preset=self.preset, models=self.models, progress=self.progress
            )[0]
        return self._miou[key]

    def _key(self, row: Row) -> str:
        options = dict(row.car_options)
        settings = self.preset.replace(**row.preset_changes).settings
        return repr(settings.replace(post="crf", **options))

    def headline(self):
        """:class:`carlib.evaluation.shapesworld.CarWorldReport` of :attr:`HEADLINE`'s variants (measured once)."""
        if self._headline is None:
            from carlib.evaluation.shapesworld import evaluate_car_on_world
            from carlib.postprocess import ColourRegionMaskSource

            sam_source = ColourRegionMaskSource() if "car_sam" in self.variants else None
            self._store_headline(
                evaluate_car_on_world(
                    self.n,
                    seed=self.seed,
                    preset=self.preset,
                    models=self.models,
                    variants=self.variants,
                    progress=self.progress,
                    sam_source=sam_source,
                )
            )
        return self._headline

    def row(self, row: Row) -> float:
        """mIoU in [0, 1] of one ablation row (CaR + dense CRF with the row's changes)."""
        key = self._key(row)
        if key not in self._miou:
            from carlib.evaluation.shapesworld import evaluate_car_on_world

            report = evaluate_car_on_world(
                self.n,
                seed=self.seed,
                preset=self.preset.replace(**row.preset_changes),
                models=self.models,
                variants=("car_crf",),
                progress=self.progress,
                car_options=row.car_options,
            )
            self._miou[key] = report.miou["car_crf"]
        return self._miou[key]

    def prefetch(self, rows: Sequence[Row], *, headline: bool = True, workers: int | None = None) -> None:
        """Measure the headline variants and ``rows`` in ``workers`` processes at once (every job is independent).

        Each worker loads the ShapesWorld CLIP itself and runs on one thread,
        as the notebooks do; each variant and row gives the number
        :meth:`headline` and :meth:`row` would (one CaR per variant either way).
        ``workers=None`` starts one process per job.
        """
        import multiprocessing

        jobs: list[tuple[str, str | Row]] = (
            [("variant", name) for name in self.variants] if headline and self._headline is None else []
        )
        covered = set(self._miou)
        if jobs:  # rows with the preset's own settings, or the single pass, come with the headline
            covered |= {
                key
                for key, variant in (
                    (self._key(Row("", {}, {}, None)), "car_crf"),
                    (self._key(Row("", {}, {"recurrent": False}, None)), "single_pass_crf"),
                )
                if variant in self.variants
            }
        todo = {self._key(row): row for row in rows if self._key(row) not in covered}
        jobs += [("row", row) for row in todo.values()]
        if not jobs:
            return
        workers = len(jobs) if workers is None else workers
        # A multiprocessing pool, not concurrent.futures: leaving its block terminates the workers, so an
        # interrupt does not wait minutes for the jobs already running.
        processes = max(1, min(workers, len(jobs)))
        with multiprocessing.get_context("spawn").Pool(processes, initializer=_start_worker) as pool:
            futures = [
                (kind, job, pool.apply_async(_measure_job, (kind, job, self.n, self.seed))) for kind, job in jobs
            ]
            reports = {}
            for kind, job, future in futures:
                if kind == "variant":
                    reports[job] = future.get()
                else:
                    assert isinstance(job, Row)  # kind "row"
                    self._miou[self._key(job)] = future.get()
        if reports:
            self._store_headline(_merge_reports(self.n, reports))

    def _store_headline(self, report) -> None:
        self._headline = report
        # The same settings as two ablation rows (the preset itself, and Table 2's single pass): reuse them.
        if "car_crf" in report.miou:
            self._miou[self._key(Row("", {}, {}, None))] = report.miou["car_crf"]
        if "single_pass_crf" in report.miou:
            self._miou[self._key(Row("", {}, {"recurrent": False}, None))] = report.miou["single_pass_crf"]

    def ablation(self, table: str) -> list[tuple[Row, float]]:
        """Every row of ``carlib ablate --table TABLE --preset shapes`` with its mIoU in [0, 1]."""
        return [(row, self.row(row)) for row in table_rows(table, self.preset)]

    def measure(self, analogue: WorldAnalogue) -> Measured:
        """Our number (mIoU %) for a published row's analogue."""
        if analogue.kind == "headline":
            return Measured(self.headline().miou[analogue.name] * 100, f"ShapesWorld {analogue.name}")
        if analogue.kind == "ablation":
            (row,) = [row for row in table_rows(analogue.name, self.preset) if row.name == analogue.row]
            return Measured(self.row(row) * 100, f"ShapesWorld `ablate --table {analogue.name}`")
        if analogue.kind == "method":
            return Measured(self.method(analogue.name) * 100, f"ShapesWorld, {analogue.name} alone")
        if analogue.kind == "spread":
            values = [value * 100 for _, value in self.ablation(analogue.name)]
            return Measured((min(values), max(values)), f"ShapesWorld, {len(values)} settings")
        raise ValueError(f"unknown analogue kind {analogue.kind!r}")


def _start_worker() -> None:
    import signal

    import torch

    # Ctrl-C reaches every process of the terminal's group: the main process ends the pool, quietly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


_WORKER_MODELS: list = []  # a worker process loads the ShapesWorld CLIP once for all its jobs


def _measure_job(kind: str, job, n: int, seed: int):
    """One :meth:`WorldRuns.prefetch` job, in a worker process: a headline variant (its report) or a row (mIoU)."""
    variants = (job,) if kind == "variant" else HEADLINE
    runs = WorldRuns(n, seed=seed, variants=variants, models=_WORKER_MODELS[0] if _WORKER_MODELS else None)
    if not _WORKER_MODELS:
        _WORKER_MODELS.append(runs.models)
    return runs.headline() if kind == "variant" else runs.row(job)


def _merge_reports(n: int, reports: dict):
    """One report from single-variant ones; keep and drop rates and steps are ``car_crf``'s, as in one run."""
    from carlib.evaluation.shapesworld import CarWorldReport

    merged = CarWorldReport(scenes=n)
    for name, report in reports.items():
        merged.miou[name] = report.miou[name]
        merged.per_class_iou[name] = report.per_class_iou[name]
    source = reports.get("car_crf") or next(iter(reports.values()))
    merged.present_kept, merged.absent_dropped = source.present_kept, source.absent_dropped
    merged.mean_steps, merged.seconds_per_scene = source.mean_steps, source.seconds_per_scene
    return merged


def world_numbers(table: PaperTable, runs: WorldRuns) -> dict[str, Measured]:
    """Our ShapesWorld number for every row of ``table`` that has an analogue."""
    return {
        row.label: runs.measure(row.world) if row.world else Measured(source="no ShapesWorld analogue")
        for row in table.rows
    }


# --- the report ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    """A table's report: published beside ours, as markdown and as a JSON-ready dict."""

    table: PaperTable
    ours: dict[str, Measured]
    source: str
    commands: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"### {heading(self.table)}: {self.table.title}",
            "",
            f"Ours: {self.source}.",
            "",
            "| row | published % | ours % | ours from |",
            "|---|---|---|---|",
        ]
        for row in self.table.rows:
            measured = self.ours.get(row.label, Measured())
            decimals = published_decimals(row.published) if row.published is not None else 1
            lines.append(
                f"| {row.label} | {format_number(row.published, decimals)} | {format_number(measured.value)} "
                f"| {measured.source} |"
            )
        for note in (*self.table.notes, *((self.table.world_note,) if self.table.world_note else ())):
            lines += ["", f"- {note}"]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict:
        def plain(value):
            return list(value) if isinstance(value, tuple) else value

        return {
            "table": self.table.number,
            "title": self.table.title,
            "source": self.source,
            "commands": self.commands,
            "rows": [
                {
                    "label": row.label,
                    "method": row.method,
                    "published": plain(row.published),
                    "ours": plain(self.ours.get(row.label, Measured()).value),
                    "ours_from": self.ours.get(row.label, Measured()).source,
                }
                for row in self.table.rows
            ],
        }


def listing(table: PaperTable, **values: str | None) -> str:
    """What a table needs, as markdown: commands, datasets (with their docs), weights."""
    import shlex

    lines = [f"### {heading(table)}: {table.title}", "", "Commands:", "", "```"]
    lines += ["carlib " + shlex.join(fill(command, **values)) for command in table.commands()] or ["(none)"]
    lines += [
        "```",
        "",
        "Datasets: " + ", ".join(f"`{name}` ({DATASET_DOCS.get(name, 'docs/datasets.md')})" for name in table.presets),
        "",
        "Weights:",
    ]
    lines += [f"- {line}" for line in weights_needed(table)]
    if table.world_note:
        lines += ["", f"Offline, on ShapesWorld: {table.world_note}"]
    unmeasured = [row for row in table.rows if row.command is None and row.method == "CaR"]
    if unmeasured:
        lines += [
            "",
            "Published but not run by carlib: " + "; ".join(f"{row.label} ({row.note})" for row in unmeasured),
        ]
    others: dict[bool, dict[str, int]] = {True: {}, False: {}}
    for row in table.rows:
        if row.method != "CaR":
            counts = others[row.command is not None]
            counts[row.method] = counts.get(row.method, 0) + 1
    if others[True]:
        lines += [
            "",
            "Other methods' published numbers, measured by carlib running the method alone (`--method`): "
            + ", ".join(f"{method} ({count})" for method, count in others[True].items()),
        ]
    if others[False]:
        lines += [
            "",
            "Other methods' published numbers, kept for comparison and not run: "
            + ", ".join(f"{method} ({count})" for method, count in others[False].items()),
        ]
    return "\n".join(lines) + "\n"


def heading(table: PaperTable) -> str:
    """``Table N`` for the paper's tables, ``Other methods`` for :data:`METHODS_TABLE`."""
    return f"Table {table.number}" if table.number in TABLE_NUMBERS else "Other methods"
