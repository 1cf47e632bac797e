"""Loading CLIP models: open_clip names and tags, local checkpoints, seeded random weights.

One entry point, :func:`load_clip`, returns a :class:`ClipBundle` holding the
model with everything CaR needs beside it (tokenizer, preprocessing, patch
size). Weights are never unpickled as arbitrary objects (see
:mod:`carlib.checkpoints`).

OpenAI's weights were trained with QuickGELU; an open_clip model built with
plain GELU loads them without complaint and computes wrong embeddings. So the
activation is decided before the model is built, from the tag or from the
checkpoint file itself (:func:`infer_activation`), and every bundle says in
one line which was chosen and why (:attr:`ClipBundle.weights_note`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import open_clip
import torch

from carlib.checkpoints import CheckpointError, open_checkpoint
from carlib.files import atomic_write
from carlib.images import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

logger = logging.getLogger("carlib")

WEIGHTS_DIR_ENV = "CARLIB_WEIGHTS_DIR"
DATA_DIR_ENV = "CARLIB_DATA_DIR"
SHAPES_MODEL_NAME = "shapes"
PRECISIONS = ("fp32", "fp16", "bf16")
_CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SEEDED_WEIGHTS_KEY = "carlib_seeded_random_weights"
"""Safetensors metadata key marking a file written by :func:`write_seeded_weights` (its value: the seed)."""


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither on disk nor downloadable; the message says where to put them."""


@dataclass
class ClipBundle:
    """A CLIP model with what the CaR pipeline needs to use it.

    Attributes:
        name: the open_clip model name (e.g. ``"ViT-B-16"``) or ``"shapes"``.
        pretrained: the tag or checkpoint path the weights came from; ``None``
            for seeded random weights.
        model: the ``open_clip.CLIP`` module, in eval mode, gradients off.
        tokenizer: callable mapping a list of strings to a LongTensor of token ids.
        preprocess: the model's standard classification transform
            (PIL image -> 3xSxS float tensor; resize shortest side, centre crop).
        mean, std: per-channel normalisation in [0, 1] units.
        patch_size: ViT patch size in pixels.
        device: where the model lives.
        dtype: the model's parameter dtype.
        activation: ``"QuickGELU"`` or ``"GELU"``, the MLP activation the model was built with.
        weights_note: one line saying where the weights came from and why
            that activation was chosen (also logged by :func:`load_clip`).
        seeded_random: True for random weights, including files written by
            :func:`write_seeded_weights`: the model computes nothing meaningful.
    """

    name: str
    pretrained: Optional[str]
    model: torch.nn.Module
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    preprocess: Callable[[Any], torch.Tensor]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    patch_size: int
    device: torch.device
    dtype: torch.dtype
    activation: str = "GELU"
    weights_note: str = ""
    seeded_random: bool = False

    @property
    def num_layers(self) -> int:
        """Number of residual blocks in the vision transformer."""
        return len(self.model.visual.transformer.resblocks)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """CUDA when present, else CPU; an explicit device is validated."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu'")
    return resolved


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    """Map a precision name to a dtype, refusing combinations the device cannot run.

    fp16 needs CUDA (CPU kernels for half-precision matmuls are missing or very
    slow); bf16 runs on CPU and on GPUs that support it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device; use 'fp32' or 'bf16' on CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU does not support bf16; use precision='fp16' or 'fp32'")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def data_dir() -> Path:
    """The folder of bundled assets (``$CARLIB_DATA_DIR`` or the repository's ``data/``)."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parent.parent / "data"


def load_clip(
    name: str,
    pretrained: Optional[str] = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    *,
    seed: int = 0,
    quick_gelu: Optional[bool] = None,
) -> ClipBundle:
    """Build a CLIP model by open_clip name, with pretrained or seeded random weights.

    Arguments:
        name: an open_clip model name (``"ViT-B-16"``, ``"ViT-L-14"``, any name in
            ``open_clip.list_models()``), or ``"shapes"`` for the small CLIP this
            project trains on ShapesWorld and ships in ``data/shapes_clip``.
        pretrained: ``None`` for the architecture with random weights drawn from
            ``seed``; an open_clip tag such as ``"openai"``; or the path of a local
            checkpoint (OpenAI-style state dict, open_clip checkpoint, or
            ``.safetensors``), which works wherever a tag does.
        device: ``None`` picks CUDA when available, else CPU.
        precision: ``"fp32"``, ``"fp16"`` (CUDA only) or ``"bf16"``.
        seed: seed for random weights (only used when ``pretrained`` is None).
        quick_gelu: use QuickGELU activations (what OpenAI's weights were trained
            with). ``None`` infers it from the tag or the checkpoint file
            (:func:`infer_activation`); the choice and its reason are logged and
            kept in :attr:`ClipBundle.weights_note`.

    Returns:
        a :class:`ClipBundle` in eval mode with gradients disabled on parameters.

    Raises:
        WeightsNotFoundError: the tag's weights are not on disk and cannot be
            downloaded; the message names the file and where to place it.
        CheckpointError: a local checkpoint is corrupt or does not fit the model.
        ValueError: unknown model name, tag or precision.
    """
    resolved_device = resolve_device(device)
    dtype = check_precision(precision, resolved_device)
    if name == SHAPES_MODEL_NAME:
        bundle = _load_shapes_clip(pretrained)
    else:
        bundle = _load_open_clip(name, pretrained, seed=seed, quick_gelu=quick_gelu)
    bundle.model.eval().requires_grad_(False)
    bundle.model.to(device=resolved_device, dtype=dtype)
    bundle.device = resolved_device
    bundle.dtype = dtype
    if bundle.weights_note:
        (logger.warning if bundle.seeded_random and bundle.pretrained else logger.info)(bundle.weights_note)
    return bundle


def fetch_weights(name: str, pretrained: str) -> Path:
    """Make sure an open_clip tag's weights are on disk (downloading if needed); returns the file.

    The file lands in ``$CARLIB_WEIGHTS_DIR/<name>-<tag>/`` where :func:`load_clip`
    looks first. Raises :class:`WeightsNotFoundError` with instructions offline.
    """
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not tag_cfg:
        raise ValueError(f"unknown pretrained tag {pretrained!r} for {name!r}")
    return _locate_tag_weights(name, pretrained, tag_cfg)


@dataclass(frozen=True)
class ActivationChoice:
    """Which MLP activation a model is built with, and why.

    Attributes:
        quick_gelu: True for QuickGELU (x * sigmoid(1.702 x), what OpenAI trained with).
        reason: the evidence, in words.
    """

    quick_gelu: bool
    reason: str

    @property
    def name(self) -> str:
        return "QuickGELU" if self.quick_gelu else "GELU"


def infer_activation(
    name: str,
    *,
    tag_cfg: Optional[dict] = None,
    checkpoint: Optional[Path] = None,
    openai_metadata: Sequence[str] = (),
    quick_gelu: Optional[bool] = None,
) -> ActivationChoice:
    """Decide QuickGELU or GELU for a model about to receive some weights.

    The evidence, strongest first: an explicit ``quick_gelu``; a model name
    ending in ``-quickgelu``; the tag's metadata (every ``openai`` tag says
    QuickGELU); for a checkpoint file, OpenAI's metadata entries in the state
    dict (``input_resolution``, ``context_length``, ``vocab_size``: OpenAI's own
    format), an ``open_clip_config.json`` beside the file (the Hugging Face
    hub layout), or the file lying where a tag's download goes (a
    ``<name>-<tag>`` folder, or the tag's repository in the Hugging Face cache).
    Without any of these it is GELU, open_clip's default for every non-OpenAI
    checkpoint.

    Arguments:
        name: the open_clip model name.
        tag_cfg: the pretrained tag's config, when weights come by tag.
        checkpoint: the checkpoint file, when weights come from a path.
        openai_metadata: which OpenAI metadata entries the file holds.
        quick_gelu: the caller's explicit choice, if any.

    Returns:
        an :class:`ActivationChoice`.
    """
    if quick_gelu is not None:
        return ActivationChoice(bool(quick_gelu), f"quick_gelu={bool(quick_gelu)} was asked for")
    if name.endswith("-quickgelu"):
        return ActivationChoice(True, "the model name ends in -quickgelu")
    if tag_cfg is not None:
        tag_says = bool(tag_cfg.get("quick_gelu", False))
        return ActivationChoice(tag_says, "the pretrained tag says so" + ("; OpenAI trained with QuickGELU" * tag_says))
    if checkpoint is None:
        return ActivationChoice(False, "random weights: open_clip's default")
    if openai_metadata:
        return ActivationChoice(True, f"an OpenAI-format state dict: it holds {', '.join(openai_metadata)}")
    config = checkpoint.parent / "open_clip_config.json"
    if config.is_file():
        try:
            model_cfg = json.loads(config.read_text()).get("model_cfg", {})
        except (json.JSONDecodeError, AttributeError):
            model_cfg = {}
        if isinstance(model_cfg, dict) and "quick_gelu" in model_cfg:
            return ActivationChoice(bool(model_cfg["quick_gelu"]), f"quick_gelu in {config.name} beside the file")
    tag = _tag_of_location(name, checkpoint)
    if tag is not None:
        tag_says = bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))
        return ActivationChoice(tag_says, f"the file lies where the {tag!r} tag's weights are downloaded")
    return ActivationChoice(
        False,
        "no sign of OpenAI weights: no OpenAI metadata entries, no open_clip_config.json beside it, not in a "
        f"{name}-openai folder; if these are OpenAI's weights, pass quick_gelu=True (CLI: --activation quickgelu)",
    )


def _tag_of_location(name: str, checkpoint: Path) -> Optional[str]:
    """The tag whose download location holds ``checkpoint``: ``<name>-<tag>/`` or the tag's hub cache folder."""
    folders = [part for part in checkpoint.resolve().parts[:-1]] + [part for part in checkpoint.parts[:-1]]
    for tag in open_clip.list_pretrained_tags_by_model(name):
        repo = (open_clip.get_pretrained_cfg(name, tag).get("hf_hub") or "").strip("/")
        cache_folder = "models--" + repo.replace("/", "--") if repo else None
        if f"{name}-{tag}" in folders or (cache_folder and cache_folder in folders):
            return tag
    return None


def _load_open_clip(
    name: str, pretrained: Optional[str], *, seed: int, quick_gelu: Optional[bool]
) -> ClipBundle:
    if name not in open_clip.list_models():
        raise ValueError(
            f"unknown model name {name!r}; use 'shapes' or an open_clip name such as "
            "'ViT-B-16' or 'ViT-L-14' (see open_clip.list_models())"
        )
    path: Optional[Path] = None
    tag_cfg: Optional[dict] = None
    if pretrained is not None:
        if _looks_like_path(pretrained):
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise WeightsNotFoundError(f"checkpoint file not found: {path}")
        else:
            tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
            if not tag_cfg:
                tags = open_clip.list_pretrained_tags_by_model(name)
                raise ValueError(
                    f"unknown pretrained tag {pretrained!r} for {name}; known tags: {tags}, "
                    "or pass the path of a local checkpoint file"
                )
            path = _locate_tag_weights(name, pretrained, tag_cfg)
    # The file's header is read first: the activation must be known before the model is built.
    checkpoint = open_checkpoint(path) if path is not None else None
    activation = infer_activation(
        name,
        tag_cfg=tag_cfg,
        checkpoint=path if tag_cfg is None else None,
        openai_metadata=checkpoint.openai_metadata if checkpoint is not None else (),
        quick_gelu=quick_gelu,
    )
    with torch.random.fork_rng(devices=[]), _quiet_open_clip_logging():
        torch.manual_seed(seed)
        model = open_clip.create_model(name, pretrained=None, force_quick_gelu=activation.quick_gelu)
    seeded = checkpoint is None or SEEDED_WEIGHTS_KEY in checkpoint.metadata
    if checkpoint is not None:
        checkpoint.load_into(model, name)
    source = f"seed {seed}" if checkpoint is None else f"{pretrained!r} ({path})" if tag_cfg else str(path)
    note = f"{name} weights from {source}: {activation.name} ({activation.reason})"
    if checkpoint is not None and seeded:
        note += (f"; SEEDED RANDOM weights written by `carlib weights --random-seed` (seed "
                 f"{checkpoint.metadata[SEEDED_WEIGHTS_KEY]}): results mean nothing, delete the file for real ones")

    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    tag_cfg = tag_cfg or {}
    mean = tuple(tag_cfg.get("mean", preprocess_cfg.get("mean", OPENAI_CLIP_MEAN)))
    std = tuple(tag_cfg.get("std", preprocess_cfg.get("std", OPENAI_CLIP_STD)))
    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False, mean=mean, std=std)
    return ClipBundle(
        name=name,
        pretrained=str(pretrained) if pretrained is not None else None,
        model=model,
        tokenizer=open_clip.get_tokenizer(name),
        preprocess=preprocess,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        patch_size=_patch_size(model),
        device=torch.device("cpu"),
        dtype=torch.float32,
        activation=activation.name,
        weights_note=note,
        seeded_random=seeded,
    )


def write_seeded_weights(name: str, tag: str = "openai", seed: int = 0) -> Path:
    """Write seeded random weights of ``name`` exactly where ``tag``'s download would put them.

    This runs the real-weights path (``load_clip(name, "openai")``, ``--model
    openai``) end to end on a machine that cannot download, as the test suite
    and the benchmarks do: the architecture, the file format and location and
    the loading code are the real ones; the numbers are meaningless. The file
    is marked in its metadata, so every later load says so. An existing file
    that is not such a marked one (real weights) is never overwritten.

    Arguments:
        name: an open_clip model name (``"ViT-B-16"``, ``"ViT-L-14"``).
        tag: the pretrained tag whose location to fill (its activation is used).
        seed: the random seed.

    Returns:
        the path of the written ``open_clip_model.safetensors``.

    Raises:
        ValueError: unknown name or tag, or real weights already at that place.
    """
    tag_cfg = open_clip.get_pretrained_cfg(name, tag)
    if not tag_cfg:
        raise ValueError(f"unknown pretrained tag {tag!r} for {name!r}")
    target = _weights_dir() / f"{name}-{tag}" / _hub_filenames()[0]
    if target.is_file():
        existing = open_checkpoint(target)
        if SEEDED_WEIGHTS_KEY not in existing.metadata:
            raise ValueError(f"{target} holds real weights; carlib never overwrites them with random ones")
    bundle = _load_open_clip(name, None, seed=seed, quick_gelu=bool(tag_cfg.get("quick_gelu", False)))
    from safetensors.torch import save_file

    state = {key: value.contiguous() for key, value in bundle.model.state_dict().items()}
    metadata = {"format": "pt", SEEDED_WEIGHTS_KEY: str(seed)}
    return atomic_write(lambda temporary: save_file(state, temporary, metadata=metadata), target)


def _load_shapes_clip(pretrained: Optional[str]) -> ClipBundle:
    folder = Path(pretrained).expanduser() if pretrained else data_dir() / "shapes_clip"
    config_path = folder / "config.json"
    weights_path = folder / "model.safetensors"
    for required in (config_path, weights_path):
        if not required.is_file():
            raise WeightsNotFoundError(
                f"the ShapesWorld model is missing {required}; it ships in the repository's "
                f"data/shapes_clip/ (restore it with `git checkout data/shapes_clip`) or can be "
                "retrained with `carlib world train`"
            )
    try:
        config = json.loads(config_path.read_text())
        model_cfg = config["model_cfg"]
    except (json.JSONDecodeError, KeyError) as error:
        raise CheckpointError(f"{config_path} is not a valid ShapesWorld config: {error}") from error
    model = open_clip.CLIP(**model_cfg)
    open_checkpoint(weights_path).load_into(model, SHAPES_MODEL_NAME)
    mean = tuple(config.get("mean", OPENAI_CLIP_MEAN))
    std = tuple(config.get("std", OPENAI_CLIP_STD))
    image_size = config.get("image_size", model.visual.image_size)
    return ClipBundle(
        name=SHAPES_MODEL_NAME,
        pretrained=str(folder),
        model=model,
        tokenizer=open_clip.tokenizer.SimpleTokenizer(context_length=config["context_length"]),
        preprocess=open_clip.image_transform(image_size, is_train=False, mean=mean, std=std),
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        patch_size=_patch_size(model),
        device=torch.device("cpu"),
        dtype=torch.float32,
        activation="QuickGELU" if model_cfg.get("quick_gelu") else "GELU",
        weights_note=f"the ShapesWorld CLIP from {folder}: {'QuickGELU' if model_cfg.get('quick_gelu') else 'GELU'}, "
        "as its config.json says it was trained",
    )


@contextmanager
def _quiet_open_clip_logging() -> Iterator[None]:
    # open_clip logs a warning for every random-weight model, which is what tests ask for.
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)


def _patch_size(model: torch.nn.Module) -> int:
    patch = model.visual.patch_size
    patch = patch if isinstance(patch, int) else patch[0]
    if not hasattr(model.visual, "transformer"):
        raise ValueError("carlib needs a CLIP with a ViT vision tower (ResNet towers have no patch tokens)")
    return int(patch)


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith(_CHECKPOINT_SUFFIXES) or Path(value).expanduser().exists()


def _hub_filenames() -> tuple[str, ...]:
    return ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _locate_tag_weights(name: str, tag: str, tag_cfg: dict) -> Path:
    """Find a tag's weights on disk, or download them when the hub is reachable.

    Search order: ``$CARLIB_WEIGHTS_DIR/<name>-<tag>/<file>``, then the Hugging
    Face cache. Downloads are attempted only when not offline and the hub
    answers within seconds, so a machine without internet fails fast with
    instructions instead of retrying for a minute.
    """
    repo = (tag_cfg.get("hf_hub") or "").rstrip("/")
    local_dir = _weights_dir() / f"{name}-{tag}"
    for filename in _hub_filenames():
        candidate = local_dir / filename
        if candidate.is_file():
            return candidate
    if repo:
        from huggingface_hub import try_to_load_from_cache

        for filename in _hub_filenames():
            cached = try_to_load_from_cache(repo, filename)
            if isinstance(cached, str) and Path(cached).is_file():
                return Path(cached)
    instructions = (
        f"weights for {name!r} pretrained={tag!r} are not on this machine. Download "
        f"'{_hub_filenames()[0]}' (or '{_hub_filenames()[1]}') from the Hugging Face repo "
        f"'{repo}' and place it at {local_dir}/ (the folder comes from ${WEIGHTS_DIR_ENV}, "
        f"default {_default_weights_dir()}), or pass pretrained='/path/to/checkpoint'. "
        "On a machine with internet, `make weights` does this."
    )
    if not repo or _offline() or not _hub_reachable():
        raise WeightsNotFoundError(instructions)
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, _hub_filenames()[0], local_dir=str(local_dir)))
    except Exception as error:  # the hub client raises many types; the user needs one message
        raise WeightsNotFoundError(f"{instructions} (download failed: {type(error).__name__})") from None


def _default_weights_dir() -> Path:
    return Path.home() / ".cache" / "carlib" / "weights"


def _weights_dir() -> Path:
    override = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(override).expanduser() if override else _default_weights_dir()


def _offline() -> bool:
    return any(
        os.environ.get(flag, "").lower() in ("1", "true", "yes")
        for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CARLIB_OFFLINE")
    )


def _hub_reachable(host: str = "huggingface.co", timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False
