"""Checkpoint files: reading them without running their code, and loading them into a model in place.

Two formats are read: ``.safetensors`` and ``torch.save`` files holding a
state dict (OpenAI or open_clip key names, optionally under ``"state_dict"``
and with DistributedDataParallel's ``"module."`` prefix). Nothing is
unpickled as an arbitrary object: ``torch.load`` runs with
``weights_only=True``, and a TorchScript archive (OpenAI's original ``.pt``
download, which is code) is recognised and refused before any reader opens it.

Safetensors files are copied straight from the file into the model's own
parameters, so loading a ViT-L/14 (1.7 GB) costs no second copy of its
weights in memory.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

OPENAI_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")
"""Entries of OpenAI's own state dicts that are not parameters (its TorchScript models carry them)."""

_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MAX_HEADER_BYTES = 100_000_000


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be read as a state dict for the requested model."""


@dataclass
class Checkpoint:
    """A checkpoint file opened for loading: its tensor names and metadata, tensors read on demand.

    Attributes:
        path: the file.
        keys: parameter names, after removing a ``"module."`` prefix.
        metadata: the safetensors header's ``__metadata__`` (empty for torch files).
        openai_metadata: which of :data:`OPENAI_METADATA_KEYS` the file holds
            (a sign of an OpenAI-format state dict).
    """

    path: Path
    keys: set[str]
    metadata: dict[str, str]
    openai_metadata: tuple[str, ...]
    _copy_into: Callable[[str, torch.Tensor], None] = field(repr=False)
    _shapes: dict[str, tuple[int, ...]] = field(repr=False)

    def load_into(self, model: torch.nn.Module, name: str) -> None:
        """Copy every tensor into ``model``'s parameters and buffers; the names must match exactly.

        Arguments:
            model: the freshly built architecture.
            name: the model's name, for error messages.

        Raises:
            CheckpointError: missing or unexpected names, or a shape that differs
                (the checkpoint is of another architecture).
        """
        targets = model.state_dict()
        missing = sorted(set(targets) - self.keys)
        unexpected = sorted(self.keys - set(targets))
        held, built = tower_kind(self.keys), tower_kind(targets)
        if (missing or unexpected) and held != built and "unknown" not in (held, built):
            raise CheckpointError(
                f"checkpoint {self.path} holds {held}, but {name!r} is {built}: it is another family's "
                "checkpoint; pass the model name its weights belong to (`carlib models` lists the families)"
            )
        if missing or unexpected:
            details = []
            if missing:
                details.append(f"{len(missing)} missing (e.g. {missing[0]})")
            if unexpected:
                details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
            raise CheckpointError(
                f"checkpoint {self.path} does not fit model {name!r}: tensor names differ, "
                f"{'; '.join(details)} (check that the model name matches the checkpoint)"
            )
        for key, target in targets.items():
            shape = self._shapes[key]
            if key == "logit_scale" and int(np.prod(shape)) == target.numel() == 1:
                shape = tuple(target.shape)  # OpenAI stores it as [], some exports as [1]
            if tuple(shape) != tuple(target.shape):
                raise CheckpointError(
                    f"checkpoint {self.path} does not fit model {name!r}: {key} is {list(shape)} in the file "
                    f"but {list(target.shape)} in the model (check that the model name matches the checkpoint)"
                )
        with torch.no_grad():
            for key, target in targets.items():
                self._copy_into(key, target)


def tower_kind(names) -> str:
    """The kind of vision tower a state dict's parameter names describe, in words (``"unknown"`` if none fits)."""
    names = list(names)

    def has(fragment: str) -> bool:
        return any(fragment in key for key in names)

    if has("visual.transformer.resblocks"):
        return "an open_clip ViT vision tower (visual.transformer.resblocks)"
    if (has("visual.trunk.blocks") and has(".attn.q_proj.")) or has("visual.trunk.rope"):
        return "a timm Eva vision tower (EVA02/PE-Core: visual.trunk.blocks with q_proj)"
    if has("visual.trunk.blocks"):
        parts = [
            part
            for part, present in (
                ("a class token", has("visual.trunk.cls_token")),
                ("a MAP attention pool", has("visual.trunk.attn_pool")),
            )
            if present
        ]
        return (
            f"a timm ViT vision tower with {' and '.join(parts) or 'neither class token nor attention pool'}"
            " (visual.trunk.blocks)"
        )
    if has("visual.trunk.stages"):
        return "a convolutional timm vision tower (visual.trunk.stages)"
    if has("visual.layer1."):
        return "an OpenAI ResNet vision tower (visual.layer1)"
    return "unknown"


def open_checkpoint(path: Path) -> Checkpoint:
    """Open a checkpoint file for :meth:`Checkpoint.load_into`, reading only its header where possible.

    Arguments:
        path: a ``.safetensors`` file or a ``torch.save`` state dict.

    Returns:
        a :class:`Checkpoint`.

    Raises:
        CheckpointError: unreadable, corrupt, a TorchScript archive, or not a state dict.
    """
    path = Path(path)
    if _is_torchscript(path):
        raise CheckpointError(
            f"{path} is a TorchScript archive (OpenAI's original .pt download): it holds code, and carlib "
            "does not run code from checkpoints. Use the open_clip weights instead: "
            "open_clip_model.safetensors from the Hugging Face repo named in `carlib weights --help` "
            "(or any state-dict file)."
        )
    if _is_safetensors(path):
        return _open_safetensors(path)
    return _open_torch_file(path)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(name.endswith("/constants.pkl") or "/code/" in name for name in names)


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as handle:
        head = handle.read(9)
    # A safetensors file starts with an 8-byte header length followed by the JSON header's "{".
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < _MAX_HEADER_BYTES


def _open_safetensors(path: Path) -> Checkpoint:
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            if header_length > min(size - 8, _MAX_HEADER_BYTES):
                raise ValueError("header length exceeds the file")
            header: dict[str, Any] = json.loads(handle.read(header_length))
    except (struct.error, ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: not a valid safetensors file ({error})") from error
    data_start = 8 + header_length
    metadata = {str(k): str(v) for k, v in (header.pop("__metadata__", None) or {}).items()}
    entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
    prefixed = _all_prefixed(header)
    for key, entry in header.items():
        try:
            dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
            shape = tuple(int(side) for side in entry["shape"])
            begin, end = (int(offset) for offset in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"cannot read checkpoint {path}: bad header entry for {key!r}") from error
        expected = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
        if end - begin != expected or data_start + end > size:
            raise CheckpointError(f"cannot read checkpoint {path}: {key!r} is truncated or corrupt")
        entries[key[len("module.") :] if prefixed else key] = (dtype, shape, data_start + begin, end - begin)

    def copy_into(key: str, target: torch.Tensor) -> None:
        dtype, _shape, offset, length = entries[key]
        with path.open("rb") as handle:
            handle.seek(offset)
            if dtype == target.dtype and target.is_contiguous() and target.device.type == "cpu":
                # Straight into the parameter's memory: no temporary copy of a 1.7 GB model.
                buffer = target.view(-1).view(torch.uint8).numpy() if target.numel() else np.empty(0, np.uint8)
                if handle.readinto(buffer.data) != length:
                    raise CheckpointError(f"cannot read checkpoint {path}: {key!r} is truncated")
                return
            raw = bytearray(handle.read(length))
        if len(raw) != length:
            raise CheckpointError(f"cannot read checkpoint {path}: {key!r} is truncated")
        source = torch.frombuffer(raw, dtype=dtype) if length else torch.empty(0, dtype=dtype)
        target.copy_(source.reshape(target.shape))

    return _checkpoint(path, {key: entry[1] for key, entry in entries.items()}, metadata, copy_into)


def _open_torch_file(path: Path) -> Checkpoint:
    try:
        try:
            # mmap keeps the file's pages out of the process's own memory until each tensor is copied.
            loaded: Any = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error).lower() and "zipfile" not in str(error).lower():
                raise
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as error:  # any reader failure means the file is unusable
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if isinstance(loaded, dict) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    prefixed = _all_prefixed(loaded)
    tensors = {(key[len("module.") :] if prefixed else key): value for key, value in loaded.items()}

    def copy_into(key: str, target: torch.Tensor) -> None:
        target.copy_(tensors[key].reshape(target.shape))

    return _checkpoint(path, {key: tuple(value.shape) for key, value in tensors.items()}, {}, copy_into)


def _checkpoint(
    path: Path,
    shapes: dict[str, tuple[int, ...]],
    metadata: dict[str, str],
    copy_into: Callable[[str, torch.Tensor], None],
) -> Checkpoint:
    openai = tuple(key for key in OPENAI_METADATA_KEYS if key in shapes)
    parameters = {key: shape for key, shape in shapes.items() if key not in OPENAI_METADATA_KEYS}
    return Checkpoint(path, set(parameters), metadata, openai, copy_into, parameters)


def _all_prefixed(names: dict) -> bool:
    """True when every name carries DistributedDataParallel's ``"module."`` prefix (then it is dropped)."""
    return bool(names) and all(key.startswith("module.") for key in names)
