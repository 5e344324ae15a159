"""Tile classifiers: torchvision backbones with an N-band stem and a multi-label head.

Models return LOGITS (one per class); the sigmoid lives in the loss during training and inside the graph
of the exported ONNX model. Nothing is ever downloaded: pretrained RGB weights come only from a local
torchvision ``state_dict`` file, and their RGB filters are kept for the first three input channels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from minewatch.errors import UserError

log = logging.getLogger(__name__)

# name -> (constructor, path of the first conv, path of the final linear layer)
_BACKBONES: dict[str, tuple[Callable[..., nn.Module], str, str]] = {
    "resnet18": (torchvision.models.resnet18, "conv1", "fc"),
    "resnet34": (torchvision.models.resnet34, "conv1", "fc"),
    "resnet50": (torchvision.models.resnet50, "conv1", "fc"),
    "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small, "features.0.0", "classifier.3"),
    "mobilenet_v3_large": (torchvision.models.mobilenet_v3_large, "features.0.0", "classifier.3"),
    "efficientnet_b0": (torchvision.models.efficientnet_b0, "features.0.0", "classifier.1"),
}
BACKBONES: tuple[str, ...] = tuple(_BACKBONES)
DEFAULT_BACKBONE = "mobilenet_v3_small"
# Initial positive rate the head's bias encodes: rare positives, so early training is not swamped by
# confident false positives (RetinaNet's prior-probability trick).
PRIOR_PROBABILITY = 0.1
BN_MOMENTUM = 0.1


def _get(module: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)  # type: ignore[index]
    return module


def _set(module: nn.Module, dotted: str, new: nn.Module) -> None:
    *parents, last = dotted.split(".")
    parent = _get(module, ".".join(parents)) if parents else module
    if last.isdigit():
        parent[int(last)] = new  # type: ignore[index]
    else:
        setattr(parent, last, new)


def adapt_conv_weight(rgb: torch.Tensor, in_channels: int) -> torch.Tensor:
    """First-conv weights for ``in_channels`` bands from RGB weights ``(out, 3, kh, kw)``.

    The first three channels keep the RGB filters unchanged (so RGB features stay exactly those of the
    pretrained net). Each extra band gets the mean of the RGB filters, rescaled per output filter to the
    mean norm of its RGB filters: an extra band then drives each filter about as strongly as one colour
    band does, instead of the weaker response of a plain average of partly opposing colour filters.
    With fewer than three bands, the first bands take the RGB filters summed by luminance-like averaging.
    """
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected RGB conv weights (out, 3, kh, kw), got {tuple(rgb.shape)}")
    if in_channels < 3:
        # e.g. a panchromatic band: the sum keeps the response to a grey input.
        summed = rgb.sum(dim=1, keepdim=True)
        return summed.repeat(1, in_channels, 1, 1) / in_channels
    if in_channels == 3:
        return rgb.clone()
    mean = rgb.mean(dim=1, keepdim=True)
    rgb_norm = rgb.flatten(2).norm(dim=2).mean(dim=1).view(-1, 1, 1, 1)
    mean_norm = mean.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    scale = torch.where(mean_norm > 0, rgb_norm / mean_norm.clamp_min(1e-12), torch.ones_like(mean_norm))
    extra = (mean * scale).repeat(1, in_channels - 3, 1, 1)
    return torch.cat([rgb, extra], dim=1)


def _load_rgb_state(path: Path) -> dict[str, torch.Tensor]:
    """A torchvision ``state_dict`` saved with ``torch.save``, read without executing code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError("weights file not found", path=path, fix="check the path") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is not a state_dict
        raise UserError(
            f"not a readable torchvision state_dict ({type(exc).__name__})",
            path=path,
            fix="save one with torch.save(model.state_dict(), PATH)",
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError("the weights file does not hold a state_dict of tensors", path=path,
                        fix="save one with torch.save(model.state_dict(), PATH)")
    return state


def build_model(backbone: str, in_channels: int, num_classes: int,
                weights: Path | str | None = None, *, n_masks: int = 0, decoder_channels: int = 32,
                decoder_fine_channels: int = 0) -> nn.Module:
    """A torchvision backbone for ``in_channels`` bands with a ``num_classes`` multi-label head (logits).

    ``weights``: optional local torchvision RGB ``state_dict`` of the same backbone (never downloaded).
    Its RGB first-conv filters are kept for channels 0-2, extra bands start from their rescaled mean,
    and the classification head is always new.
    ``n_masks`` > 0 adds the dense head (:class:`~minewatch.train.dense.DenseModel`, ``decoder_channels``
    wide, with a stride-1 level ``decoder_fine_channels`` wide when > 0): the model then returns
    ``(class logits, mask logits)``.
    """
    if backbone not in _BACKBONES:
        raise UserError(f"unknown backbone '{backbone}'", fix=f"use one of {', '.join(BACKBONES)}")
    if in_channels < 1 or num_classes < 1:
        raise ValueError(f"in_channels and num_classes must be positive, got {in_channels}, {num_classes}")
    ctor, conv_path, head_path = _BACKBONES[backbone]
    model = ctor(weights=None)
    if weights is not None:
        _load_pretrained(model, Path(weights), backbone)

    conv = _get(model, conv_path)
    assert isinstance(conv, nn.Conv2d)
    if in_channels != conv.in_channels:
        new_conv = nn.Conv2d(
            in_channels, conv.out_channels, kernel_size=conv.kernel_size, stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding, dilation=conv.dilation, groups=conv.groups,  # type: ignore[arg-type]
            bias=conv.bias is not None, padding_mode=conv.padding_mode,
        )
        with torch.no_grad():
            if weights is not None:
                new_conv.weight.copy_(adapt_conv_weight(conv.weight, in_channels))
            if conv.bias is not None and new_conv.bias is not None:
                new_conv.bias.copy_(conv.bias)
        _set(model, conv_path, new_conv)

    # torchvision's MobileNetV3/EfficientNet average BatchNorm statistics with momentum 0.01, tuned for
    # ImageNet's hundreds of thousands of steps; CPU runs here take a few thousand, so use the usual 0.1.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = BN_MOMENTUM
    head = _get(model, head_path)
    assert isinstance(head, nn.Linear)
    new_head = nn.Linear(head.in_features, num_classes)
    with torch.no_grad():
        new_head.bias.fill_(-math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))
    _set(model, head_path, new_head)
    if n_masks > 0:
        from minewatch.train.dense import DenseModel

        return DenseModel(model, in_channels, n_masks, decoder_channels, decoder_fine_channels)
    return model


def _load_pretrained(model: nn.Module, path: Path, backbone: str) -> None:
    state = _load_rgb_state(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    # Only the head may differ (e.g. 1000 ImageNet classes); anything else means another architecture.
    _, conv_path, head_path = _BACKBONES[backbone]
    unexpected_missing = [k for k in missing if not k.startswith(head_path + ".")]
    if unexpected_missing or not usable:
        raise UserError(
            f"the weights do not fit backbone '{backbone}' ({len(unexpected_missing)} tensors missing or "
            f"of another shape, e.g. {unexpected_missing[:2]})",
            path=path,
            fix=f"give a torchvision {backbone} state_dict, or change model.backbone in the config",
        )
    model.load_state_dict(usable, strict=False)
    conv = _get(model, conv_path)
    if isinstance(conv, nn.Conv2d) and conv.in_channels != 3:  # pragma: no cover - all are RGB models
        raise UserError("the weights are not RGB", path=path, fix="give RGB (3-band) weights")
    log.info("initialised %s from %s (%d tensors)", backbone, path, len(usable))


def first_conv(model: nn.Module, backbone: str) -> nn.Conv2d:
    """The input convolution of a model made by :func:`build_model`."""
    conv = _get(model, _BACKBONES[backbone][1])
    assert isinstance(conv, nn.Conv2d)
    return conv


def split_output(out: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(class logits, mask logits or None) of a model's output, with or without a dense head."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


class ProbabilityModel(nn.Module):
    """Logits model plus sigmoid: what the exported graph computes (``input`` -> ``probs``, and ``masks`` when
    the model has a dense head)."""

    def __init__(self, logits_model: nn.Module) -> None:
        super().__init__()
        self.model = logits_model

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits, masks = split_output(self.model(x))
        if masks is None:
            return torch.sigmoid(logits)
        return torch.sigmoid(logits), torch.sigmoid(masks)
