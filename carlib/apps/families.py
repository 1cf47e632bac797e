"""`carlib models`: the families of vision-language models CaR runs on, and what each can do in each stage."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib models``."""
    parser = commands.add_parser(
        "models",
        help="list the supported VLM families and what each can do in each stage",
        description="Every family carlib reads through a vision-tower adapter (carlib.towers), with example open_clip "
        "names, their weights, what each stage can do with them, and how they score. Pass any example with "
        "--proposal-model / --classifier-model (NAME[:TAG|PATH]).",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown (as in README)")
    parser.set_defaults(handler=_models_command)


def families_table(markdown: bool = False) -> str:
    """The families as a text (or markdown) table, the ShapesWorld models last."""
    from carlib.models import SHAPES_MODELS
    from carlib.towers import FAMILIES

    def mark(value: bool) -> str:
        return "yes" if value else "no"

    header = (
        "family",
        "examples (open_clip names)",
        "weights (tags)",
        "Grad-CAM",
        "CLIP-ES",
        "dense maps (MaskCLIP, SCLIP, ClearCLIP, NACLIP)",
        "classifier",
        "trained with",
        "classifier feature (auto)",
    )
    rows = [
        (
            family.name,
            ", ".join(family.examples),
            family.weights,
            mark(family.gradcam),
            mark(family.clip_es),
            mark(family.dense_maps),
            mark(family.classifier),
            family.training_loss,
            family.classifier_feature,
        )
        for family in FAMILIES
    ]
    rows.append(
        (
            "ShapesWorld (this project)",
            ", ".join(SHAPES_MODELS),
            "data/shapes_clip, data/shapes_siglip",
            "yes",
            "yes",
            "yes",
            "yes",
            "softmax (shapes), sigmoid (shapes-siglip)",
            "final",
        )
    )
    notes = [family.note for family in FAMILIES] + ["small CLIPs trained and shipped by this project (offline)"]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return (
            "\n".join(lines)
            + "\n\n"
            + "\n".join(f"- {row[0]}: {note}" for row, note in zip(rows, notes, strict=True))
            + "\n"
        )
    blocks = []
    for row, note in zip(rows, notes, strict=True):
        stages = " · ".join(
            f"{name} {value}"
            for name, value in zip(("Grad-CAM", "CLIP-ES", "dense maps", "classifier"), row[3:7], strict=True)
        )
        blocks.append(
            f"{row[0]}: {row[1]}\n  weights: {row[2]}\n  stages: {stages}\n"
            f"  trained with {row[7]}; classifier feature (auto): {row[8]}\n  {note}"
        )
    return "\n\n".join(blocks) + "\n"


def _models_command(args: argparse.Namespace) -> int:
    print(families_table(markdown=args.markdown), end="")
    return 0
