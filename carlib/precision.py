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

On CPU, carlib's autocast also lays out the inputs of every batch-first
``nn.MultiheadAttention`` so that its internal transpose gives a contiguous
tensor (same values). Without that, torch 2.15 runs the input projection of a
transposed bf16 batch as a batched product over a copy of the weight per
token: one ViT-L/14 block took 19 s instead of 0.6 s for 16 images.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch
from torch.utils.hooks import RemovableHandle

AMP_CHOICES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")
BF16_CPU_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
"""The ``lscpu`` / ``/proc/cpuinfo`` flags of CPUs that compute bf16 natively (AMX tiles, AVX512-BF16)."""

Device = str | torch.device


def resolve_amp(device: Device, amp: str = "auto") -> torch.dtype | None:
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


def autocast_for(device: Device, amp: str = "auto") -> AbstractContextManager:
    """The autocast context of the model work (:func:`resolve_amp`); a no-op for full precision.

    Raises:
        ValueError: as :func:`resolve_amp`.
    """
    dtype = resolve_amp(device, amp)
    if dtype is None:
        return nullcontext()
    kind = torch.device(device).type
    return _CpuAutocast(dtype) if kind == "cpu" else torch.autocast(device_type=kind, dtype=dtype)


class _CpuAutocast(torch.autocast):
    """CPU autocast that also keeps attention inputs in the layout the fast projection needs (module docstring)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__(device_type="cpu", dtype=dtype)
        self._layout: RemovableHandle | None = None

    def __enter__(self):
        entered = super().__enter__()
        self._layout = torch.nn.modules.module.register_module_forward_pre_hook(_attention_input_layout)
        return entered

    def __exit__(self, *exception):
        if self._layout is not None:
            self._layout.remove()
            self._layout = None
        return super().__exit__(*exception)


def _attention_input_layout(module: torch.nn.Module, args: tuple):
    """For a batch-first ``nn.MultiheadAttention`` on CPU under autocast: its inputs as (B, L, E) views of
    (L, B, E)-contiguous memory, so the transpose it starts with is contiguous. Values are unchanged."""
    if not isinstance(module, torch.nn.MultiheadAttention) or not module.batch_first or len(args) < 3:
        return None
    query = args[0]
    if (
        not isinstance(query, torch.Tensor)
        or query.dim() != 3
        or query.device.type != "cpu"
        or not torch.is_autocast_enabled("cpu")
    ):
        return None
    relaid = {}
    for tensor in args[:3]:
        if id(tensor) not in relaid:  # q is k is v stays true: MHA checks it
            relaid[id(tensor)] = tensor.transpose(0, 1).contiguous().transpose(0, 1)
    return tuple(relaid[id(tensor)] for tensor in args[:3]) + tuple(args[3:])


def amp_name(dtype: torch.dtype | None) -> str:
    """``"off"``, ``"bf16"`` or ``"fp16"`` for a resolved autocast dtype."""
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


@contextmanager
def full_precision(tensor_or_device: torch.Tensor | Device) -> Iterator[None]:
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


def cpu_bf16_support(flags: set[str] | None = None) -> tuple[str, ...]:
    """Which of :data:`BF16_CPU_FLAGS` this CPU has; bf16 pays on CPU only where this is not empty."""
    flags = cpu_flags() if flags is None else flags
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


def set_global_autocast(device: Device, amp: str = "off") -> torch.dtype | None:
    """Turn autocast on or off for everything this thread runs next on ``device`` (no context to close).

    For interactive sessions (the notebooks' :func:`carlib.tutorial.setup`),
    where the model calls are spread over many cells. ``"off"`` turns it off
    again. Returns the dtype now in force (None: full precision).

    Raises:
        ValueError: as :func:`resolve_amp`.
    """
    global _global_layout
    dtype = resolve_amp(device, amp)
    kind = torch.device(device).type
    if _global_layout is not None:
        _global_layout.remove()
        _global_layout = None
    if dtype is None:
        torch.set_autocast_enabled(kind, False)
    else:
        torch.set_autocast_dtype(kind, dtype)
        torch.set_autocast_enabled(kind, True)
        if kind == "cpu":
            _global_layout = torch.nn.modules.module.register_module_forward_pre_hook(_attention_input_layout)
    return dtype


_global_layout: RemovableHandle | None = None
