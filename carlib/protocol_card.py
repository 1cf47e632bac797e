"""The protocol card: everything that defines a number, written beside it.

Every ``carlib eval`` run writes one into ``metrics.json`` (``"protocol"``)
and every ``carlib segment`` result into ``result.json``: the preset and
every setting, the models (name, tag or file, sha256 of the weights,
activation, family), the texts (templates, background words, the class-name
list and its sha256), the image geometry (resize rule, max side, window and
stride), the post-processing and its settings, the data (dataset, split,
number of samples and a sha256 of their ids), carlib's version and git
commit, the torch / open_clip / timm versions, the device and the autocast.
``carlib compare`` reads two or more cards and says what differs
(:mod:`carlib.evaluation.compare`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from carlib.car import resolve_max_side
from carlib.class_names import vocabulary_class_names
from carlib.models import ClipBundle
from carlib.presets import Preset
from carlib.settings import CarSettings
from carlib.text import BACKGROUND_TEMPLATE

CARD_VERSION = 1
"""Bumped when the card's layout changes, so ``carlib compare`` can tell old cards apart."""

_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, read in 1 MiB blocks; kept per (path, size, mtime) for the process's life."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


def text_sha256(items: Sequence[str]) -> str:
    """sha256 of strings joined by newlines (a checksum of sample ids or names)."""
    return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class CardModels:
    """The models a card records when a run has no classifier (a method alone); otherwise a LoadedModels."""

    proposal: ClipBundle
    classifier: ClipBundle | None
    description: str


def model_record(bundle) -> dict:
    """One model: name, tag or file, the weights file and its sha256, activation, family, seeded or not."""
    weights = getattr(bundle, "weights_file", None)
    return {
        "name": bundle.name,
        "pretrained": bundle.pretrained,
        "weights_file": weights,
        "sha256": file_sha256(weights) if weights and Path(weights).is_file() else None,
        "activation": bundle.activation,
        "family": bundle.family,
        "seeded_random": bool(bundle.seeded_random),
        "precision": str(bundle.dtype).replace("torch.", ""),
    }


def models_record(models) -> dict:
    """Both roles of a :class:`carlib.pipeline.LoadedModels` (``classifier`` is None when a run has none)."""
    return {
        "description": models.description,
        "proposal": model_record(models.proposal),
        "classifier": model_record(models.classifier) if models.classifier is not None else None,
    }


def carlib_record() -> dict:
    """carlib's version and the git commit of its checkout (None outside one), with whether files were changed."""
    from carlib import __version__

    root = Path(__file__).resolve().parent.parent
    commit = dirty = None
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            or None
        )
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": __version__, "git_commit": commit, "git_dirty": dirty}


def software_record() -> dict:
    """Python, torch, open_clip, timm and numpy versions."""
    import numpy
    import open_clip

    try:
        import timm

        timm_version = timm.__version__
    except ImportError:  # timm is optional for open_clip's own towers
        timm_version = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "timm": timm_version,
        "numpy": numpy.__version__,
    }


def device_record(device, amp: str = "off") -> dict:
    """The device (with the GPU's name) and the autocast the model work ran under (``"off"``, ``"bf16"``, ``"fp16"``)."""
    device = torch.device(device)
    name = str(device)
    if device.type == "cuda" and torch.cuda.is_available():
        name += f" ({torch.cuda.get_device_name(device)})"
    return {"device": name, "autocast": resolved_autocast(device, amp)}


def resolved_autocast(device, amp: str) -> str:
    """What :func:`carlib.evaluation.overlap.autocast_for` runs for ``amp`` on ``device``."""
    kind = torch.device(device).type
    if amp in ("off", None) or (amp == "auto" and kind != "cuda"):
        return "off"
    if amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return amp


def post_record(settings: CarSettings, post: str | None = None) -> dict:
    """The post-processing and its settings (CRF or SAM settings; η for ``none``)."""
    post = post or settings.post
    record: dict[str, Any] = {"post": post}
    if post == "crf":
        record["crf"] = dataclasses.asdict(settings.crf)
    elif post == "sam":
        record["sam"] = dataclasses.asdict(settings.sam)
    else:
        record["mask_threshold"] = settings.mask_threshold
    return record


def car_texts_record(preset: Preset, settings: CarSettings, queries: Sequence[str] | None = None) -> dict:
    """CaR's texts: the CAM and classifier templates, the background words of each pass, the class-name list
    (the preset's vocabulary, or ``queries`` when given: ``carlib segment``)."""
    record: dict[str, Any] = {
        "cam_templates": ["{}"]
        + ([BACKGROUND_TEMPLATE + " (from step 2)"] if settings.templated_cams_after_first_step else []),
        "classifier_templates": list(settings.templates),
        "background_template": BACKGROUND_TEMPLATE,
        "background_words": list(settings.background),
    }
    if queries is not None:
        record["class_names"] = vocabulary_class_names(queries, source="the queries").to_dict()
    elif preset.vocabulary is not None:
        if preset.things_stuff is not None:
            record["background_words_per_pass"] = {
                semantic_pass.name: list(semantic_pass.settings.background)
                for semantic_pass in preset.semantic_passes(settings)
            }
        record["class_names"] = vocabulary_class_names(preset.class_names, preset.name).to_dict()
    return record


def car_image_record(settings: CarSettings, proposal_bundle) -> dict:
    """CaR's geometry: the image shrunk to max_side, the proposal CLIP's patch-aligned resize, no windows."""
    return {
        "resize_rule": "shrunk to max_side (area) when larger; the proposal CLIP reads it resized bicubically to a "
        "multiple of its patch size (no crop), its positional embedding resized bilinearly to the "
        "grid; the classifier reads each prompted image through the model's own preprocessing",
        "max_side": resolve_max_side(settings.max_side, proposal_bundle),
        "max_side_setting": settings.max_side,
        "patch_size": proposal_bundle.patch_size,
        "window": None,
        "stride": None,
    }


def dataset_record(
    name: str,
    split: str,
    ids: Sequence[str],
    *,
    without_background: bool = False,
    data_root: str | None = None,
    class_labels: Sequence[str] = (),
    extra: dict | None = None,
) -> dict:
    """The data a number was measured on: dataset, split, sample count and ids checksum, label space."""
    record = {
        "name": name,
        "split": split,
        "samples": len(ids),
        "ids_sha256": text_sha256(list(ids)),
        "without_background": without_background,
        "data_root": data_root,
        "labels": list(class_labels),
        "labels_sha256": text_sha256(list(class_labels)),
    }
    record.update(extra or {})
    return record


def protocol_card(
    *,
    preset: Preset,
    settings: CarSettings,
    models,
    kind: str,
    method: str,
    post: str | None,
    device,
    amp: str = "off",
    texts: dict | None = None,
    image: dict | None = None,
    dataset: dict | None = None,
    method_protocol: dict | None = None,
) -> dict:
    """The card of one run (module docstring).

    Arguments:
        preset: the preset the run started from.
        settings: the settings it ran with (the preset's, with the run's changes).
        models: the :class:`carlib.pipeline.LoadedModels`.
        kind: ``"CaR"`` or ``"method alone"``.
        method: the proposal method (CaR) or the dense method alone.
        post: the post-processing (None for a method alone).
        device, amp: where and under which autocast the model work ran.
        texts, image: the texts and geometry records (CaR's by default).
        dataset: :func:`dataset_record` (None for ``carlib segment``'s single images).
        method_protocol: the :class:`carlib.method_alone.MethodProtocol` as a dict, for a method alone.
    """
    preset_record = preset.replace(settings=settings).to_dict()
    return {
        "card_version": CARD_VERSION,
        "kind": kind,
        "method": method,
        "preset": preset.name,
        "preset_record": preset_record,
        "method_protocol": method_protocol,
        "models": models_record(models),
        "texts": texts if texts is not None else car_texts_record(preset, settings),
        "image": image if image is not None else car_image_record(settings, models.proposal),
        "post": post_record(settings, post) if post is not None else {"post": "none (the method alone: argmax)"},
        "dataset": dataset,
        "carlib": carlib_record(),
        "software": software_record(),
        **device_record(device, amp),
    }
