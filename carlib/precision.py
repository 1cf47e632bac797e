"""Mixed precision for the model work: which autocast a device gets, and on which CPUs bf16 pays.

``amp`` is one of :data:`AMP_CHOICES`:

- ``"off"``: full float32, the faithful default on CPU.
- ``"bf16"``: bfloat16 autocast (CPU or GPU). On CPUs with AMX (``amx_bf16``)
  or AVX512-BF16 (``avx512_bf16``) the ViT passes run several times faster
  (ViT-L/14: 4.5x on a Sapphire Rapids Xeon); on CPUs without them bf16 is
  emulated and slower than float32.
- ``"fp16"``: float16 autocast, CUDA only.
- ``"auto"``: bf16 on a GPU that supports it, else fp16 on a GPU; **off on
  CPU**, whatever the CPU, so the default stays float32 there.

Autocast runs the models' matrix products (linear layers, attention,
convolutions) in the low precision. carlib's own arithmetic after the models
(the similarity logits and their softmax, the Grad-CAM weighting, the CLIP-ES
attention maps, the classifier's scores) runs in float32 inside
:func:`full_precision`, where bf16's 8-bit mantissa would cost accuracy and
save nothing.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import ContextManager, Iterator, Optional, Union

import torch

AMP_CHOICES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")
BF16_CPU_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
"""The ``lscpu`` / ``/proc/cpuinfo`` flags of CPUs that compute bf16 natively (AMX tiles, AVX512-BF16)."""

Device = Union[str, torch.device]


def resolve_amp(device: Device, amp: str = "auto") -> Optional[torch.dtype]:
    """The autocast dtype ``amp`` means on ``device``, or None for full precision.

    Arguments:
        device: the models' device.
        amp: one of :data:`AMP_CHOICES`.

    Raises:
        ValueError: an unknown choice, or fp16 on a device other than CUDA.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"unknown amp {amp!r}; choose one of {', '.join(AMP_CHOICES)}")
    kind = torch.device(device).type
    if amp == "off" or (amp == "auto" and kind != "cuda"):
        return None
    if amp == "fp16" and kind != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' or 'off' on CPU")
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_for(device: Device, amp: str = "auto") -> ContextManager:
    """The autocast context of the model work (:func:`resolve_amp`); a no-op for full precision.

    Raises:
        ValueError: as :func:`resolve_amp`.
    """
    dtype = resolve_amp(device, amp)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def amp_name(dtype: Optional[torch.dtype]) -> str:
    """``"off"``, ``"bf16"`` or ``"fp16"`` for a resolved autocast dtype."""
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


@contextmanager
def full_precision(tensor_or_device: Union[torch.Tensor, Device]) -> Iterator[None]:
    """Inside, autocast is off for the device: carlib's own small products stay float32.

    Arguments:
        tensor_or_device: a tensor on the device, or the device.
    """
    device = tensor_or_device.device if isinstance(tensor_or_device, torch.Tensor) else torch.device(tensor_or_device)
    kind = device.type if device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    if not torch.is_autocast_enabled(kind):
        yield
        return
    with torch.autocast(device_type=kind, enabled=False):
        yield


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as ``lscpu`` lists them (empty where /proc/cpuinfo cannot be read)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_support(flags: Optional[set[str]] = None) -> tuple[str, ...]:
    """Which of :data:`BF16_CPU_FLAGS` this CPU has; bf16 pays on CPU only where this is not empty."""
    flags = cpu_flags() if flags is None else flags
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


def set_global_autocast(device: Device, amp: str = "off") -> Optional[torch.dtype]:
    """Turn autocast on or off for everything this thread runs next on ``device`` (no context to close).

    For interactive sessions (the notebooks' :func:`carlib.tutorial.setup`),
    where the model calls are spread over many cells. ``"off"`` turns it off
    again. Returns the dtype now in force (None: full precision).

    Raises:
        ValueError: as :func:`resolve_amp`.
    """
    dtype = resolve_amp(device, amp)
    kind = torch.device(device).type
    if dtype is None:
        torch.set_autocast_enabled(kind, False)
    else:
        torch.set_autocast_dtype(kind, dtype)
        torch.set_autocast_enabled(kind, True)
    return dtype
