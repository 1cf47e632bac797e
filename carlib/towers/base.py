"""What CaR asks of a vision tower, whatever its family: the :class:`VisionTower` interface.

Every stage of carlib (Grad-CAM, CLIP-ES, MaskCLIP, the classifier, the
ShapesWorld trainer) goes through this interface and never reads a tower's
attributes itself, so a new family is one subclass here. Two kinds exist:

- :class:`TransformerTower`: a ViT-like tower (open_clip's ``VisionTransformer``,
  timm's ``VisionTransformer`` and ``Eva``): tokens, blocks, attention. It
  supports Grad-CAM, CLIP-ES and MaskCLIP-style dense maps, and subclasses
  only say how to embed, run a block, read a block's queries, keys and values,
  and pool.
- convolutional towers (:mod:`carlib.towers.convolutional`): a feature map
  and a head. Grad-CAM and the classifier work; CLIP-ES and MaskCLIP need
  attention and are refused with :class:`CapabilityError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, cast, get_args

import torch

from carlib.towers.attention import HeadQueryKey

AttentionMix = Callable[[HeadQueryKey, tuple[int, int], int], torch.Tensor]
"""``mix(qkv, grid, num_prefix_tokens)`` -> float32 B x heads x L x L attention weights (the dense methods)."""

CamTarget = Literal["patch_mean", "class_token", "pooled"]
CAM_TARGETS: tuple[str, ...] = get_args(CamTarget)


class CapabilityError(ValueError):
    """A tower was asked for something its architecture does not have (CLIP-ES on a ConvNeXt...)."""


@dataclass
class Trunk:
    """What the query-independent part of a tower's pass gives: the last block's input and the attention.

    Attributes:
        tokens: 1 x L x D batch-first tokens entering the last block (L = prefix + n
            patch tokens); for a convolutional tower, its 1 x C x h x w final feature map.
        grid: (h, w) patch grid, n = h * w.
        attention_sum: 1 x L x L, the summed head-averaged attention of the blocks
            before the last among the final ``attention_layers`` (None when that is no block).
    """

    tokens: torch.Tensor
    grid: tuple[int, int]
    attention_sum: torch.Tensor | None


@dataclass
class CamForward:
    """The differentiable tail of a pass, for Grad-CAM.

    Attributes:
        leaf: the tensor gradients are taken against (the Grad-CAM feature map),
            in the tower's own layout.
        embedding: 1 x E image embedding (not normalised) computed from ``leaf``.
        rows: maps a tensor shaped ``(*extra, *leaf.shape)`` to ``(*extra, n, D)``:
            the patch positions' rows, prefix tokens dropped, in row-major grid order.
    """

    leaf: torch.Tensor
    embedding: torch.Tensor
    rows: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class TrainingPass:
    """What the ShapesWorld trainer reads from one differentiable pass.

    Attributes:
        embedding: B x E image embeddings (the tower's own pooling, not normalised).
        patch_embeddings: B x n x E per-patch readouts (:meth:`TransformerTower.readout`), not normalised.
        attention: head-averaged B x L x L attention of each of the last ``attention_layers`` blocks.
    """

    embedding: torch.Tensor
    patch_embeddings: torch.Tensor
    attention: list[torch.Tensor]


class VisionTower(ABC):
    """One vision tower as CaR uses it (see the module docstring).

    Arguments:
        visual: the model's vision tower (``clip.visual``).

    Attributes:
        family: a short human name, e.g. ``"open_clip ViT"``.
        has_attention: False for convolutional towers (no CLIP-ES, no MaskCLIP).
    """

    family: str = "vision tower"
    has_attention: bool = True

    def __init__(self, visual: torch.nn.Module) -> None:
        self.visual = visual

    # --- geometry ---------------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int]:
        """The (height, width) the tower was trained at (what its classifier preprocessing resizes to)."""
        # Every open_clip vision tower sets image_size (an int or a pair); nn.Module types attributes Tensor | Module.
        size = cast("int | tuple[int, int]", self.visual.image_size)
        return (size, size) if isinstance(size, int) else (size[0], size[1])

    @property
    def preprocess_cfg(self) -> dict:
        """open_clip's preprocessing defaults for the architecture (mean, std, resize mode, interpolation)."""
        return dict(getattr(self.visual, "preprocess_cfg", {}) or {})

    @property
    @abstractmethod
    def patch_size(self) -> int:
        """Pixels per cell of the feature grid (the ViT patch, or a CNN's total stride)."""

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patch tokens (1 for a class token, 0 for SigLIP and CNNs)."""
        return 0

    @property
    def has_class_token(self) -> bool:
        return self.num_prefix_tokens > 0

    @property
    def num_blocks(self) -> int:
        """Residual blocks (transformer towers) or stages (convolutional towers)."""
        return 0

    @property
    def gradcam_tail(self) -> torch.nn.Module:
        """The modules Grad-CAM's backward runs through (its memory grows with them, once per query)."""
        return self.visual

    @property
    def pooling(self) -> str:
        """How the tower pools its tokens into the image embedding (``"class token"``, ``"attention pool"``...)."""
        return "average"

    @property
    def default_cam_target(self) -> CamTarget:
        """The Grad-CAM target CaR uses for this tower (:func:`carlib.cam.compute_cams`)."""
        return "pooled"

    @property
    def cam_targets(self) -> tuple[str, ...]:
        """The Grad-CAM targets this tower offers."""
        return ("pooled",)

    @property
    def supports_penultimate_class_token(self) -> bool:
        """Whether :meth:`penultimate_class_token` exists (the reference's classifier feature)."""
        return False

    def check_target(self, target: str) -> None:
        """Raise :class:`CapabilityError` (a ValueError) for a target this tower does not have."""
        if target not in CAM_TARGETS:
            raise ValueError(f"unknown CAM target {target!r}; choose one of {CAM_TARGETS}")
        if target not in self.cam_targets:
            raise CapabilityError(
                f"the Grad-CAM target {target!r} needs {_TARGET_NEEDS[target]}; this {self.family} tower "
                f"offers {', '.join(self.cam_targets)}"
            )

    def require_attention(self, what: str) -> None:
        """Raise :class:`CapabilityError` if the tower has no attention to read for ``what``."""
        if not self.has_attention:
            raise CapabilityError(
                f"{what} needs attention maps, and a {self.family} tower is convolutional: it has none. "
                "Use a ViT-like proposal model (open_clip ViT, EVA02, PE-Core, SigLIP), or turn it off "
                "(CLIP-ES: use_clip_es=False, --no-clip-es)"
            )

    # --- what CaR calls ---------------------------------------------------------------------------
    @abstractmethod
    def trunk(self, pixels: torch.Tensor, attention_layers: int, *, fp16_positions: bool = False) -> Trunk:
        """Everything before the last block, without gradients, summing the attention CLIP-ES reads.

        Arguments:
            pixels: 1 x 3 x H x W normalised image, sides multiples of :attr:`patch_size`.
            attention_layers: how many final blocks' attention CLIP-ES averages (0: none).
            fp16_positions: round the (resized) positional embedding to fp16 first, as
                the official code does (``CarSettings.official_numerics``).
        """

    def last_attention(self, trunk: Trunk) -> torch.Tensor:
        """The last block's head-averaged attention (float32 1 x L x L), read from its first norm."""
        self.require_attention("CLIP-ES")
        raise NotImplementedError

    @abstractmethod
    def cam_forward(self, trunk: Trunk, target: CamTarget) -> CamForward:
        """The last block (or the head) from the trunk, with the Grad-CAM feature map as a leaf."""

    def dense_embeddings(self, trunk: Trunk) -> torch.Tensor:
        """MaskCLIP-style per-patch embeddings (float32 n x E, unit-norm), read through the last block's values."""
        self.require_attention("MaskCLIP-style dense maps")
        raise NotImplementedError

    def attention_variant_embeddings(
        self, trunk: Trunk, mix: AttentionMix, *, keep_residual_and_mlp: bool
    ) -> torch.Tensor:
        """Per-patch embeddings (float32 n x E, unit-norm) of the last block run with another attention.

        SCLIP, ClearCLIP and NACLIP (:mod:`carlib.dense_methods`) change only how the last
        block's tokens attend to each other, and whether its residual and MLP stay.

        Arguments:
            trunk: the tokens entering the last block (:meth:`trunk`).
            mix: ``mix(qkv, grid, num_prefix_tokens)`` -> float32 B x heads x L x L weights, from the
                block's per-head queries, keys and values (:meth:`TransformerTower.head_qkv`).
            keep_residual_and_mlp: True runs the rest of the block as it is (residual, MLP, layer
                scale: SCLIP); False keeps the attention branch alone (ClearCLIP, NACLIP).

        Raises:
            CapabilityError: a convolutional tower.
        """
        self.require_attention("SCLIP, ClearCLIP and NACLIP dense maps")
        raise NotImplementedError

    def token_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """Every patch token of the full pass, read out into the embedding space: B x n x E (not normalised).

        The ShapesWorld trainer's dense loss asks these to match the texts of what covers each patch.
        """
        raise CapabilityError(f"a {self.family} tower has no per-patch readout")

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """The tower's own image embedding, B x E (what ``encode_image`` returns before normalising)."""
        return self.visual(pixels)

    def penultimate_class_token(self, pixels: torch.Tensor) -> torch.Tensor:
        """The class token after all blocks but the last, through the final norm and projection: B x E."""
        raise CapabilityError(
            f"classifier_feature 'penultimate_class_token' is the reference's quirk for open_clip ViTs with a "
            f"class token; a {self.family} tower has none: use classifier_feature='final'"
        )

    def training_pass(self, pixels: torch.Tensor, attention_layers: int) -> TrainingPass:
        """One differentiable pass for the ShapesWorld trainer (:class:`TrainingPass`)."""
        raise CapabilityError(f"the ShapesWorld trainer does not train {self.family} towers")


_TARGET_NEEDS = {
    "patch_mean": "patch tokens and a final norm and projection to pool them through",
    "class_token": "a class token",
    "pooled": "the tower's own pooling",
}


class TransformerTower(VisionTower):
    """A ViT-like tower: patch tokens, residual blocks with a first norm and attention, a pooling head.

    Subclasses implement the primitives (:meth:`embed`, :meth:`blocks`,
    :meth:`run_block`, :meth:`first_norm`, :meth:`query_key`,
    :meth:`value_path`, :meth:`finish`, :meth:`readout`);
    the CaR-facing methods are written once here on top of them.
    """

    # --- primitives -------------------------------------------------------------------------------
    @abstractmethod
    def embed(self, pixels: torch.Tensor, *, fp16_positions: bool = False) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch embedding, prefix tokens, positions resized to the grid, pre-norm: (B x L x D, (h, w))."""

    @abstractmethod
    def blocks(self) -> list[torch.nn.Module]:
        """The residual blocks, first to last."""

    @property
    def gradcam_tail(self) -> torch.nn.Module:
        return self.blocks()[-1]

    @abstractmethod
    def run_block(self, index: int, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Block ``index`` on batch-first tokens."""

    @abstractmethod
    def first_norm(self, index: int) -> torch.nn.Module:
        """The norm in front of block ``index``'s attention (``ln_1``, ``norm1``); its output is what attention reads."""

    @abstractmethod
    def query_key(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> HeadQueryKey:
        """Per-head queries and keys of block ``index`` for its first norm's (batch-first) output."""

    @abstractmethod
    def value_path(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Block ``index``'s attention output with every token attending only to itself (MaskCLIP): B x L x D."""

    @abstractmethod
    def finish(self, tokens: torch.Tensor, target: CamTarget) -> torch.Tensor:
        """The image embedding (B x E, not normalised) from the tokens leaving the last block.

        ``"patch_mean"``: the mean of the patch tokens after the final norm, through the projection
        (CaR's target); ``"class_token"``: the class token the same way; ``"pooled"``: the tower's own
        pooling (what ``encode_image`` returns).
        """

    @abstractmethod
    def readout(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each token read out into the embedding space on its own (final norm, then the pooling's
        per-token equivalent and the projection): B x T x D -> B x T x E."""

    def attention_block_context(self, tokens: int):
        """A context manager to run blocks in (open_clip picks the faster MHA path there)."""
        return _nothing()

    # --- primitives of the dense methods (SCLIP, ClearCLIP, NACLIP) ---------------------------------
    def head_qkv(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> HeadQueryKey:
        """Block ``index``'s per-head queries, keys and values (float32 B x heads x L x d_head, ``value`` set)
        for its first norm's batch-first output, rotary embedding applied where the tower has one."""
        raise CapabilityError(f"a {self.family} tower does not expose its per-head values")

    def attention_branch(self, index: int, heads: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
        """What block ``index`` adds to its residual stream for mixed per-head values ``heads``
        (B x heads x L x d_head): merged heads through the attention's output norm or gate and its output
        projection, then the block's own post-attention norm and layer scale. B x L x D."""
        raise CapabilityError(f"a {self.family} tower does not expose its attention output")

    def block_tail(self, index: int, tokens: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """The rest of block ``index`` after its attention: ``tokens + branch``, then the MLP branch added
        (second norm, MLP, layer scale). With the block's own attention branch this is the block."""
        raise CapabilityError(f"a {self.family} tower does not expose its MLP branch")

    # --- geometry ---------------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return len(self.blocks())

    @property
    def cam_targets(self) -> tuple[str, ...]:
        return ("patch_mean", "class_token", "pooled") if self.has_class_token else ("patch_mean", "pooled")

    @property
    def default_cam_target(self) -> CamTarget:
        # CaR's target (the patch mean through the projection) for every tower with a class token;
        # an attention-pooled tower without one (SigLIP) is explained through its own pooling.
        return "patch_mean" if self.has_class_token else "pooled"

    # --- CaR-facing -------------------------------------------------------------------------------
    def attention(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Head-averaged softmax attention of block ``index``: float32 B x L x L, rows sum to 1."""
        return self.query_key(index, normed, grid).logits().softmax(dim=-1).mean(dim=1)

    def trunk(self, pixels: torch.Tensor, attention_layers: int, *, fp16_positions: bool = False) -> Trunk:
        if attention_layers:
            self.require_attention("CLIP-ES")
        blocks = self.num_blocks
        first_attention_block = blocks - attention_layers
        attention_sum: torch.Tensor | None = None
        with torch.no_grad():
            tokens, grid = self.embed(pixels, fp16_positions=fp16_positions)
            with self.attention_block_context(tokens.shape[1] if tokens.device.type == "cpu" else 0):
                for index in range(blocks - 1):
                    if attention_layers and index >= first_attention_block:
                        attention = self.attention(index, self.first_norm(index)(tokens), grid)
                        attention_sum = attention if attention_sum is None else attention_sum + attention
                    tokens = self.run_block(index, tokens, grid)
        return Trunk(tokens, grid, attention_sum)

    def last_attention(self, trunk: Trunk) -> torch.Tensor:
        last = self.num_blocks - 1
        with torch.no_grad():
            return self.attention(last, self.first_norm(last)(trunk.tokens), trunk.grid)

    def cam_forward(self, trunk: Trunk, target: CamTarget) -> CamForward:
        self.check_target(target)
        last = self.num_blocks - 1
        store: dict = {}
        with torch.enable_grad(), replace_output(self.first_norm(last), store):
            output = self.run_block(last, trunk.tokens, trunk.grid)
            embedding = self.finish(output, target)
        return CamForward(store["output"], embedding, self.patch_rows)

    def patch_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(*extra, 1, L, D)`` batch-first tokens to ``(*extra, n, D)`` patch rows."""
        return tensor[..., 0, self.num_prefix_tokens :, :]

    def dense_embeddings(self, trunk: Trunk) -> torch.Tensor:
        self.require_attention("MaskCLIP-style dense maps")
        last = self.num_blocks - 1
        with torch.no_grad():
            values = self.value_path(last, self.first_norm(last)(trunk.tokens), trunk.grid)
            dense = self.readout(values[:, self.num_prefix_tokens :])[0]
        return torch.nn.functional.normalize(dense.float(), dim=-1)

    def attention_variant_embeddings(
        self, trunk: Trunk, mix: AttentionMix, *, keep_residual_and_mlp: bool
    ) -> torch.Tensor:
        last = self.num_blocks - 1
        with torch.no_grad():
            tokens = trunk.tokens
            normed = self.first_norm(last)(tokens)
            qkv = self.head_qkv(last, normed, trunk.grid)
            assert qkv.value is not None  # head_qkv always reads the values
            weights = mix(qkv, trunk.grid, self.num_prefix_tokens)
            branch = self.attention_branch(last, weights @ qkv.value, normed)
            output = self.block_tail(last, tokens, branch) if keep_residual_and_mlp else branch
            dense = self.readout(output[:, self.num_prefix_tokens :])[0]
        return torch.nn.functional.normalize(dense.float(), dim=-1)

    def run_all(self, pixels: torch.Tensor, stop: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Embed and run blocks ``0..stop-1`` (all by default): (B x L x D tokens, grid)."""
        tokens, grid = self.embed(pixels)
        stop = self.num_blocks if stop is None else stop
        with self.attention_block_context(tokens.shape[1] if tokens.device.type == "cpu" else 0):
            for index in range(stop):
                tokens = self.run_block(index, tokens, grid)
        return tokens, grid

    def image_embedding(self, pixels: torch.Tensor, target: CamTarget = "pooled") -> torch.Tensor:
        """The embedding this adapter computes itself, piece by piece (tests compare it with ``encode_image``)."""
        tokens, _ = self.run_all(pixels)
        return self.finish(tokens, target)

    def token_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.run_all(pixels)
        return self.readout(tokens[:, self.num_prefix_tokens :])

    def training_pass(self, pixels: torch.Tensor, attention_layers: int) -> TrainingPass:
        if attention_layers:
            self.require_attention("the attention-affinity loss")
        tokens, grid = self.embed(pixels)
        maps = []
        for index in range(self.num_blocks):
            if attention_layers and index >= self.num_blocks - attention_layers:
                maps.append(self.attention(index, self.first_norm(index)(tokens), grid))
            tokens = self.run_block(index, tokens, grid)
        return TrainingPass(self.finish(tokens, "pooled"), self.readout(tokens[:, self.num_prefix_tokens :]), maps)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def replace_output(module: torch.nn.Module, store: dict) -> Iterator[None]:
    """Swap a module's output for a detached leaf that requires grad, for the duration.

    The leaf is kept in ``store["output"]``, so gradients can be taken with
    respect to exactly that activation while the module's own forward code
    runs unchanged. The hook is removed however the block exits.
    """

    def hook(_module: torch.nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)
        store["output"] = leaf
        return leaf

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
