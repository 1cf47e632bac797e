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
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import open_clip
import torch

from carlib.checkpoints import CheckpointError, open_checkpoint
from carlib.files import atomic_write
from carlib.images import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from carlib.towers import VisionTower, tower_for

logger = logging.getLogger("carlib")

OpenClipModel: TypeAlias = open_clip.CLIP | open_clip.CustomTextCLIP
"""The open_clip model classes carlib loads (every open_clip factory returns one of them)."""

REAL_CLIP_MAX_SIDE = 640
"""The proposal-stage bound for real CLIP (``max_side="auto"``): every benchmark image but ADE's
fits (VOC and Pascal Context are at most 500 px, COCO and RefCOCO 640 px), so benchmarks run at
their native size as in the paper, while a 12 MP photo's proposals run on 640 x 480 instead of
~47,000 ViT-B/16 patch tokens."""
WEIGHTS_DIR_ENV = "CARLIB_WEIGHTS_DIR"
DATA_DIR_ENV = "CARLIB_DATA_DIR"
SHAPES_MODEL_NAME = "shapes"
SHAPES_MODELS: dict[str, str] = {SHAPES_MODEL_NAME: "shapes_clip", "shapes-siglip": "shapes_siglip"}
"""The ShapesWorld models this project trains and ships: name -> folder under ``data/``
(``shapes``: contrastive, open_clip ViT; ``shapes-siglip``: sigmoid loss, timm ViT with a MAP head)."""
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
        patch_size: pixels per cell of the tower's feature grid (the ViT patch size).
        device: where the model lives.
        dtype: the model's parameter dtype.
        activation: ``"QuickGELU"`` or ``"GELU"``, the MLP activation the model was built with.
        weights_note: one line saying where the weights came from and why
            that activation was chosen (also logged by :func:`load_clip`).
        seeded_random: True for random weights, including files written by
            :func:`write_seeded_weights`: the model computes nothing meaningful.
        tower: the vision tower's adapter (:mod:`carlib.towers`), which every stage reads it through
            (a property: built from ``model.visual``, and built again if ``model`` is replaced, e.g. by a
            half-precision copy).
        embed_dim: width E of the shared image-text embedding.
        default_max_side: what ``max_side="auto"`` means with this model as the proposal model:
            640 px for real CLIP, the training size for the ShapesWorld models.
        default_classifier_feature: what ``classifier_feature="auto"`` means for this model:
            the reference's penultimate class token for open_clip ViTs, the final embedding for
            every other family and for the ShapesWorld models (trained on their final embedding).
        weights_file: the file the weights were read from (None for seeded random weights built in
            memory); a run's protocol card records its sha256.
    """

    name: str
    pretrained: str | None
    model: OpenClipModel
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
    embed_dim: int = 0
    default_max_side: int = REAL_CLIP_MAX_SIDE
    default_classifier_feature: str = ""
    weights_file: str | None = None

    _tower: VisionTower | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.default_classifier_feature:
            supported = self.tower.supports_penultimate_class_token
            self.default_classifier_feature = "penultimate_class_token" if supported else "final"

    @property
    def tower(self) -> VisionTower:
        if self._tower is None or self._tower.visual is not self.model.visual:
            self._tower = tower_for(self.model)
        return self._tower

    @property
    def num_layers(self) -> int:
        """Number of residual blocks (stages, for a convolutional tower) in the vision tower."""
        return self.tower.num_blocks

    @property
    def family(self) -> str:
        """The vision tower's family, e.g. ``"open_clip ViT"`` (:data:`carlib.towers.FAMILIES`)."""
        return self.tower.family

    @property
    def logit_scale(self) -> torch.Tensor:
        """The model's inverse temperature, ``logit_scale.exp()`` (a 0-d tensor in the model's dtype)."""
        return self.model.logit_scale.exp()

    @property
    def logit_bias(self) -> torch.Tensor | None:
        """The sigmoid loss's logit bias (SigLIP), or None for contrastively trained models."""
        return getattr(self.model, "logit_bias", None)

    @property
    def training_loss(self) -> str:
        """``"sigmoid"`` for models trained with SigLIP's loss (they have a logit bias), else ``"softmax"``."""
        return "sigmoid" if self.logit_bias is not None else "softmax"


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
    pretrained: str | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    *,
    seed: int = 0,
    quick_gelu: bool | None = None,
    tokenizer: str | os.PathLike | None = None,
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
        tokenizer: a folder holding a Hugging Face tokenizer, for models whose
            tokenizer is not open_clip's own (SigLIP, SigLIP 2); None uses the
            Hugging Face cache, or downloads when online.

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
    if name in SHAPES_MODELS:
        bundle = _load_shapes_clip(name, pretrained)
    else:
        bundle = _load_open_clip(name, pretrained, seed=seed, quick_gelu=quick_gelu, tokenizer=tokenizer)
    bundle.model.eval().requires_grad_(False)
    bundle.model.to(device=resolved_device, dtype=dtype)
    bundle.device = resolved_device
    bundle.dtype = dtype
    if bundle.weights_note:
        (logger.warning if bundle.seeded_random and bundle.pretrained else logger.info)(bundle.weights_note)
    return bundle


def default_tag(name: str) -> str:
    """The pretrained tag a model name means without one: ``openai`` where it has it, else its first tag.

    Raises:
        ValueError: an unknown name, or one with no pretrained weights at all.
    """
    _check_model_name(name)
    tags = open_clip.list_pretrained_tags_by_model(name)
    if not tags:
        raise ValueError(f"{name} has no pretrained weights in open_clip; pass a checkpoint file (NAME:PATH)")
    return "openai" if "openai" in tags else tags[0]


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
    tag_cfg: dict | None = None,
    checkpoint: Path | None = None,
    openai_metadata: Sequence[str] = (),
    quick_gelu: bool | None = None,
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


def _tag_of_location(name: str, checkpoint: Path) -> str | None:
    """The tag whose download location holds ``checkpoint``: ``<name>-<tag>/`` or the tag's hub cache folder."""
    folders = list(checkpoint.resolve().parts[:-1]) + list(checkpoint.parts[:-1])
    for tag in open_clip.list_pretrained_tags_by_model(name):
        repo = (open_clip.get_pretrained_cfg(name, tag).get("hf_hub") or "").strip("/")
        cache_folder = "models--" + repo.replace("/", "--") if repo else None
        if f"{name}-{tag}" in folders or (cache_folder and cache_folder in folders):
            return tag
    return None


def _load_open_clip(
    name: str,
    pretrained: str | None,
    *,
    seed: int,
    quick_gelu: bool | None,
    tokenizer: str | os.PathLike | None = None,
) -> ClipBundle:
    _check_model_name(name)
    # The tokenizer first: a missing one is a one-line error before any weights are read.
    text_tokenizer = _tokenizer_for(name, tokenizer, required=pretrained is not None)
    path: Path | None = None
    tag_cfg: dict | None = None
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
    model = _build_architecture(name, seed=seed, quick_gelu=activation.quick_gelu)
    seeded = checkpoint is None or SEEDED_WEIGHTS_KEY in checkpoint.metadata
    if checkpoint is not None:
        checkpoint.load_into(model, name)
    source = f"seed {seed}" if checkpoint is None else f"{pretrained!r} ({path})" if tag_cfg else str(path)
    note = f"{name} weights from {source}: {activation.name} ({activation.reason})"
    if checkpoint is not None and seeded:
        note += (
            f"; SEEDED RANDOM weights written by `carlib weights --random-seed` (seed "
            f"{checkpoint.metadata[SEEDED_WEIGHTS_KEY]}): results mean nothing, delete the file for real ones"
        )

    if not tag_cfg and path is not None:
        location_tag = _tag_of_location(name, path)
        tag_cfg = open_clip.get_pretrained_cfg(name, location_tag) if location_tag else None
    tower = tower_for(model)
    preprocess, mean, std = _preprocessing(tower, tag_cfg or {})
    return ClipBundle(
        name=name,
        pretrained=str(pretrained) if pretrained is not None else None,
        model=model,
        tokenizer=text_tokenizer,
        preprocess=preprocess,
        mean=mean,
        std=std,
        patch_size=tower.patch_size,
        device=torch.device("cpu"),
        dtype=torch.float32,
        activation=activation.name,
        weights_note=note,
        seeded_random=seeded,
        _tower=tower,
        weights_file=str(path) if path is not None else None,
        embed_dim=int(open_clip.get_model_config(name)["embed_dim"]),
    )


def _preprocessing(tower: VisionTower, tag_cfg: dict) -> tuple[Callable, tuple, tuple]:
    """The classifier's transform, mean and std: the tag's values (SigLIP squashes, MobileCLIP skips
    normalising), else the architecture's own, else OpenAI's."""
    preprocess_cfg = tower.preprocess_cfg
    mean = tuple(tag_cfg.get("mean", preprocess_cfg.get("mean", OPENAI_CLIP_MEAN)))
    std = tuple(tag_cfg.get("std", preprocess_cfg.get("std", OPENAI_CLIP_STD)))
    preprocess = open_clip.image_transform(
        tower.image_size,
        is_train=False,
        mean=mean,
        std=std,
        resize_mode=tag_cfg.get("resize_mode", preprocess_cfg.get("resize_mode")),
        interpolation=tag_cfg.get("interpolation", preprocess_cfg.get("interpolation")),
    )
    return preprocess, mean, std


HF_TOKENIZER_HINT = (
    'on a machine with internet run once: python -c "from transformers import AutoTokenizer; '
    "AutoTokenizer.from_pretrained('{repo}').save_pretrained('{folder}')\" and pass tokenizer='{folder}' "
    "(command line: --tokenizer {folder})"
)


def needs_hf_tokenizer(name: str) -> bool:
    """Whether an open_clip model's tokenizer comes from Hugging Face (SigLIP) rather than open_clip's own BPE."""
    return bool((open_clip.get_model_config(name) or {}).get("text_cfg", {}).get("hf_tokenizer_name"))


class MissingTokenizer:
    """Stands in for a Hugging Face tokenizer that is not on this machine; calling it raises the instructions.

    Only random-weight models get one (tests and benchmarks of the vision side): with real weights,
    :func:`load_clip` fails at once instead.
    """

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        raise WeightsNotFoundError(self.message)


def _tokenizer_for(
    name: str, tokenizer: str | os.PathLike | None, required: bool = True
) -> Callable[[Sequence[str]], torch.Tensor]:
    """The model's tokenizer: open_clip's BPE, or (SigLIP) a Hugging Face tokenizer from ``tokenizer`` or the cache.

    Arguments:
        name: the open_clip model name.
        tokenizer: a local tokenizer folder, or None.
        required: False (random weights) returns a :class:`MissingTokenizer` instead of raising.

    Raises:
        WeightsNotFoundError: a Hugging Face tokenizer that is neither given, cached nor downloadable,
            or a ``tokenizer`` folder that does not exist; the message says how to get it once.
    """
    text_cfg = (open_clip.get_model_config(name) or {}).get("text_cfg", {})
    repo = text_cfg.get("hf_tokenizer_name")
    if not repo:
        if tokenizer is not None:
            raise ValueError(
                f"{name} uses open_clip's own BPE tokenizer; tokenizer= is only for models "
                "whose tokenizer comes from Hugging Face (SigLIP)"
            )
        return open_clip.get_tokenizer(name)
    folder = f"{name.lower()}-tokenizer"
    options = dict(context_length=text_cfg.get("context_length"), **text_cfg.get("tokenizer_kwargs", {}))
    try:
        import transformers  # noqa: F401
    except ImportError:
        message = f"{name}'s tokenizer needs the transformers package: pip install transformers"
        if not required:
            return MissingTokenizer(message)
        raise WeightsNotFoundError(message) from None
    if tokenizer is not None:
        path = Path(tokenizer).expanduser()
        if not path.is_dir():
            raise WeightsNotFoundError(
                f"tokenizer folder not found: {path}; " + HF_TOKENIZER_HINT.format(repo=repo, folder=path)
            )
        return open_clip.tokenizer.HFTokenizer(str(path), **options)
    online = not _offline() and _hub_reachable()
    try:
        return open_clip.tokenizer.HFTokenizer(repo, local_files_only=not online, **options)
    except Exception as error:  # transformers raises OSError, ValueError, HF errors...: one message for the user
        message = (
            f"{name}'s tokenizer (Hugging Face '{repo}') is not on this machine ({type(error).__name__}); "
            + HF_TOKENIZER_HINT.format(repo=repo, folder=folder)
        )
        if not required:
            return MissingTokenizer(message)
        raise WeightsNotFoundError(message) from None


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
    model = _build_architecture(name, seed=seed, quick_gelu=bool(tag_cfg.get("quick_gelu", False)))
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    metadata = {"format": "pt", SEEDED_WEIGHTS_KEY: str(seed)}

    def write(temporary: str) -> None:
        try:
            save_file(state, temporary, metadata=metadata)
        except SafetensorError as error:  # its writer reports a full disk as "... (os error 28)", not an OSError
            number = re.search(r"os error (\d+)", str(error))
            if number is None:
                raise
            raise OSError(int(number[1]), os.strerror(int(number[1]))) from error

    return atomic_write(write, target)


def _check_model_name(name: str) -> None:
    if name not in open_clip.list_models():
        raise ValueError(
            f"unknown model name {name!r}; use 'shapes' or an open_clip name such as "
            "'ViT-B-16', 'ViT-L-14', 'EVA02-B-16' or 'ViT-B-16-SigLIP2' (see `carlib models` and "
            "open_clip.list_models())"
        )


def _build_architecture(name: str, *, seed: int, quick_gelu: bool) -> torch.nn.Module:
    """open_clip's architecture ``name`` with weights drawn from ``seed`` (torch's global RNG left as it was)."""
    _check_model_name(name)
    with torch.random.fork_rng(devices=[]), _quiet_open_clip_logging():
        torch.manual_seed(seed)
        return open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu)


def _load_shapes_clip(name: str, pretrained: str | None) -> ClipBundle:
    from carlib.world.model import build_shapes_clip

    folder = Path(pretrained).expanduser() if pretrained else data_dir() / SHAPES_MODELS[name]
    config_path = folder / "config.json"
    weights_path = folder / "model.safetensors"
    for required in (config_path, weights_path):
        if not required.is_file():
            raise WeightsNotFoundError(
                f"the ShapesWorld model is missing {required}; it ships in the repository's "
                f"data/{SHAPES_MODELS[name]}/ (restore it with `git checkout data/{SHAPES_MODELS[name]}`) or can be "
                "retrained with `carlib world train`"
            )
    try:
        config = json.loads(config_path.read_text())
        model_cfg = config["model_cfg"]
    except (json.JSONDecodeError, KeyError) as error:
        raise CheckpointError(f"{config_path} is not a valid ShapesWorld config: {error}") from error
    family = config.get("family", "clip")
    expected = "siglip" if name == "shapes-siglip" else "clip"
    if family != expected:
        raise CheckpointError(
            f"{folder} holds a ShapesWorld {family!r} model, but {name!r} is the {expected!r} one; "
            f"load it as {'shapes-siglip' if family == 'siglip' else 'shapes'}"
        )
    model = build_shapes_clip(config)
    open_checkpoint(weights_path).load_into(model, name)
    mean = tuple(config.get("mean", OPENAI_CLIP_MEAN))
    std = tuple(config.get("std", OPENAI_CLIP_STD))
    tower = tower_for(model)
    image_size = config.get("image_size", tower.image_size[0])
    return ClipBundle(
        name=name,
        pretrained=str(folder),
        model=model,
        tokenizer=open_clip.tokenizer.SimpleTokenizer(context_length=config["context_length"]),
        preprocess=open_clip.image_transform(image_size, is_train=False, mean=mean, std=std),
        mean=mean,
        std=std,
        patch_size=tower.patch_size,
        device=torch.device("cpu"),
        dtype=torch.float32,
        activation="QuickGELU" if model_cfg.get("quick_gelu") else "GELU",
        weights_note=f"the ShapesWorld {'SigLIP-style model' if family == 'siglip' else 'CLIP'} from {folder}: "
        f"{'QuickGELU' if model_cfg.get('quick_gelu') else 'GELU'}, as its config.json says it was trained",
        _tower=tower,
        weights_file=str(weights_path),
        embed_dim=int(model_cfg["embed_dim"]),
        default_max_side=int(image_size),
        default_classifier_feature="final",
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
