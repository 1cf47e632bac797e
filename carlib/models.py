"""Loading CLIP models: open_clip names and tags, local checkpoints, seeded random weights.

One entry point, :func:`load_clip`, returns a :class:`ClipBundle` holding the
model with everything CaR needs beside it (tokenizer, preprocessing, patch
size). Weights are never unpickled as arbitrary objects: checkpoints are read
with ``safetensors`` or ``torch.load(weights_only=True)``.
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

from carlib.images import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

WEIGHTS_DIR_ENV = "CARLIB_WEIGHTS_DIR"
DATA_DIR_ENV = "CARLIB_DATA_DIR"
SHAPES_MODEL_NAME = "shapes"
PRECISIONS = ("fp32", "fp16", "bf16")
_CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither on disk nor downloadable; the message says where to put them."""


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be read as a state dict for the requested model."""


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
            with). ``None`` follows the tag's metadata; for a checkpoint path it
            defaults to True when the name ends in ``-quickgelu``.

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


def _load_open_clip(
    name: str, pretrained: Optional[str], *, seed: int, quick_gelu: Optional[bool]
) -> ClipBundle:
    if name not in open_clip.list_models():
        raise ValueError(
            f"unknown model name {name!r}; use 'shapes' or an open_clip name such as "
            "'ViT-B-16' or 'ViT-L-14' (see open_clip.list_models())"
        )
    checkpoint: Optional[Path] = None
    tag_cfg: dict = {}
    if pretrained is not None:
        if _looks_like_path(pretrained):
            checkpoint = Path(pretrained).expanduser()
            if not checkpoint.is_file():
                raise WeightsNotFoundError(f"checkpoint file not found: {checkpoint}")
        else:
            tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
            if not tag_cfg:
                tags = open_clip.list_pretrained_tags_by_model(name)
                raise ValueError(
                    f"unknown pretrained tag {pretrained!r} for {name}; known tags: {tags}, "
                    "or pass the path of a local checkpoint file"
                )
            checkpoint = _locate_tag_weights(name, pretrained, tag_cfg)
    if quick_gelu is None:
        quick_gelu = bool(tag_cfg.get("quick_gelu", False)) or name.endswith("-quickgelu")

    with torch.random.fork_rng(devices=[]), _quiet_open_clip_logging():
        torch.manual_seed(seed)
        model = open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu)
    if checkpoint is not None:
        _load_checkpoint_into(model, checkpoint, name)

    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
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
    )


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
    _load_checkpoint_into(model, weights_path, SHAPES_MODEL_NAME)
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


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat state dict without unpickling arbitrary objects.

    Accepts ``.safetensors``, and ``torch.save`` files holding a state dict (OpenAI
    or open_clip key names, optionally under ``"state_dict"`` and with a
    ``"module."`` prefix from DistributedDataParallel).

    Raises:
        CheckpointError: unreadable, corrupt, or not a state dict.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # any reader failure means the file is unusable
        hint = ""
        if "TorchScript" in str(error) or "constants.pkl" in str(error):
            hint = (
                " It looks like an OpenAI TorchScript archive; carlib does not execute those. "
                "Use the open_clip weights instead (open_clip_model.safetensors)."
            )
        raise CheckpointError(f"cannot read checkpoint {path}: {error}.{hint}") from error
    if isinstance(loaded, dict) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key[len("module."):]: value for key, value in loaded.items()}
    return loaded


def _load_checkpoint_into(model: torch.nn.Module, path: Path, name: str) -> None:
    state_dict = read_state_dict(path)
    for key in ("input_resolution", "context_length", "vocab_size"):
        state_dict.pop(key, None)  # metadata entries of OpenAI's original state dicts
    if "logit_scale" in state_dict and state_dict["logit_scale"].ndim != model.logit_scale.ndim:
        state_dict["logit_scale"] = state_dict["logit_scale"].reshape(model.logit_scale.shape)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        summary = str(error).splitlines()[0]
        raise CheckpointError(
            f"checkpoint {path} does not fit model {name!r}: {summary} "
            "(check that the model name matches the checkpoint)"
        ) from error


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
