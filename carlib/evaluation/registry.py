"""The registry: every table of the paper (and the other methods' table) as data.

Each :class:`PaperTable` lists its published numbers (mIoU %, from ``paper-numbers.md``), the exact
:class:`Command` (``carlib eval`` / ``carlib ablate``) that measures each on real data, the datasets
(presets, with their section of docs/datasets.md) and the weights they need. This is the only place
published numbers are written: ``carlib eval`` finds its run's number with :func:`published_for_run`,
``carlib ablate`` its rows' with :func:`published_ablation` and :func:`published_spreads`, and
``carlib reproduce`` (:mod:`carlib.evaluation.reproduce`) reports the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from carlib.evaluation.ablation_rows import table_rows
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
        return [self.app, *option_words(self.values(**placeholders))]


def option_words(options: Mapping[str, object]) -> list[str]:
    """Options by name as command-line words: ``{"limit": 2, "without_background": True}`` ->
    ``["--limit", "2", "--without-background"]``."""
    words: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return words


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
        ablation_row: the :func:`carlib.evaluation.ablation_rows.table_rows` row it is (``carlib ablate`` rows only).
    """

    label: str
    published: Published | None
    command: Command | None = None
    metrics: str | None = None
    world: WorldAnalogue | None = None
    method: str = "CaR"
    note: str = ""
    metric: str | None = None
    ablation_row: str | None = None


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
                label_prefix + row.name,
                published.get(row.name),
                command,
                f"{out}/{table}-{index}/metrics.json",
                world,
                ablation_row=row.name,
            )
        )
    unknown = set(published) - {row.name for row in table_rows(table, get_preset(preset))}
    if unknown:
        raise ValueError(
            f"table {number}: published rows {sorted(unknown)} are not rows of `carlib ablate --table "
            f"{table}`; fix the names in carlib/evaluation/registry.py"
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
            dict(zip(names, values, strict=True)),
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
        for position, (split, value) in enumerate(zip(splits[preset], values, strict=True)):
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
        for column, value in zip(column_names.get(preset, splits[preset]), values, strict=True):
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


def _ablate_rows(table: str):
    """The registry's rows measured by ``carlib ablate --table TABLE`` (any preset)."""
    for registered in registry_tables().values():
        for row in registered.rows:
            if row.command is not None and row.command.app == "ablate" and row.command.option("table") == table:
                yield row


def published_ablation(table: str, preset: str = "voc") -> dict[str, float]:
    """The published mIoU % of each row of an ablation table run on ``preset``, by row name
    (:func:`carlib.evaluation.ablation_rows.table_rows`); rows the paper does not have are absent."""
    return {
        row.ablation_row: row.published
        for row in _ablate_rows(table)
        if row.command is not None
        and row.command.option("preset") == preset
        and row.ablation_row is not None
        and isinstance(row.published, float)
    }


def published_spreads(table: str = "sweep") -> dict[str, tuple[float, float]]:
    """The published (low, high) spread of an ablation table's rows, by preset (Table 5's sweep)."""
    return {
        str(row.command.option("preset")): row.published
        for row in _ablate_rows(table)
        if row.command is not None and isinstance(row.published, tuple)
    }
