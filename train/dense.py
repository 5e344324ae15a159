"""The dense head: per-pixel object masks beside the tile classifier, on the same torchvision backbone.

:class:`DenseModel` runs the backbone once and returns two things: the classifier's LOGITS (N, K), computed
exactly as the plain torchvision model computes them (same modules, same state-dict keys, so a classifier
checkpoint initialises it), and mask LOGITS (N, M, H, W) at the input's own grid (the model grid, e.g.
0.5 m) for the mask names in :data:`minewatch.model_meta.MASK_NAMES` (container bodies, cooling, heat).

The decoder is an FPN-lite top-down path: a 1x1 lateral projection of the backbone's stride-16, -8, -4 and
-2 features, each level upsampled (nearest) and added to the next finer one, then one depthwise-separable
3x3 block per level; a 1x1 conv gives mask logits at stride 2, bilinearly upsampled to the input grid.
Channels taper (``channels`` at strides 16 and 8, 3/4 of it at 4, 1/2 at 2) so the finest levels, which
cost the most, stay narrow. With ``fine_channels`` > 0 a last level at stride 1 adds a 3x3 projection of the
input bands themselves: the backbone's finest features are at 1 m on a 0.5 m grid, too coarse for the
0.3-2.5 m gaps between containers that a count depends on. Nothing is downloaded; the decoder always starts
from random weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Initial share of positive pixels the mask bias encodes (objects cover a few per cent of a window).
MASK_PRIOR = 0.02
TAP_STRIDES = (2, 4, 8, 16)


class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _SepBlock(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1, each with BatchNorm and ReLU."""

    def __init__(self, ch: int) -> None:
        super().__init__(_ConvBNReLU(ch, ch, 3, groups=ch), _ConvBNReLU(ch, ch, 1))


def level_channels(channels: int) -> tuple[int, ...]:
    """Decoder width per tap stride (2, 4, 8, 16)."""
    return (max(8, channels // 2), max(8, channels * 3 // 4), channels, channels)


class Decoder(nn.Module):
    """Top-down path over backbone features at strides 2, 4, 8, 16 (finest first) -> mask logits."""

    def __init__(self, in_channels: tuple[int, ...], n_masks: int, channels: int = 32, *, fine_channels: int = 0,
                 input_channels: int = 0) -> None:
        super().__init__()
        widths = level_channels(channels)
        self.lateral = nn.ModuleList(_ConvBNReLU(c, w) for c, w in zip(in_channels, widths, strict=True))
        # Going down a level changes the width: a 1x1 projection of the coarser level (no-op when equal).
        self.project = nn.ModuleList(
            nn.Identity() if widths[i + 1] == widths[i] else _ConvBNReLU(widths[i + 1], widths[i])
            for i in range(len(widths) - 1))
        self.smooth = nn.ModuleList(_SepBlock(w) for w in widths)
        self.fine: nn.ModuleDict | None = None
        if fine_channels:  # stride 1: the input bands (3x3) plus the stride-2 level, projected and upsampled
            self.fine = nn.ModuleDict({"lateral": _ConvBNReLU(input_channels, fine_channels, 3),
                                       "project": _ConvBNReLU(widths[0], fine_channels),
                                       "smooth": _SepBlock(fine_channels)})
        self.head = nn.Conv2d(fine_channels or widths[0], n_masks, 1)
        with torch.no_grad():
            self.head.bias.fill_(-math.log((1 - MASK_PRIOR) / MASK_PRIOR))

    def forward(self, feats: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Mask logits at ``x``'s grid from the backbone's ``feats`` (and ``x`` itself with a stride-1 level)."""
        d = self.smooth[-1](self.lateral[-1](feats[-1]))
        for i in range(len(feats) - 2, -1, -1):
            lat = self.lateral[i](feats[i])
            d = F.interpolate(self.project[i](d), size=lat.shape[-2:], mode="nearest") + lat
            d = self.smooth[i](d)
        size = (x.shape[-2], x.shape[-1])
        if self.fine is None:
            return F.interpolate(self.head(d), size=size, mode="bilinear", align_corners=False)
        d = F.interpolate(self.fine["project"](d), size=size, mode="bilinear", align_corners=False)
        return self.head(self.fine["smooth"](d + self.fine["lateral"](x)))


def _feature_taps(features: nn.Sequential, in_channels: int, size: int = 64) -> tuple[list[int], list[int]]:
    """Index of the last module at each stride in TAP_STRIDES, and its channel count (one dummy forward)."""
    last: dict[int, tuple[int, int]] = {}
    x = torch.zeros(1, in_channels, size, size)
    was = features.training
    features.eval()
    with torch.no_grad():
        for i, module in enumerate(features):
            x = module(x)
            stride = size // x.shape[-1]
            last[stride] = (i, x.shape[1])
    features.train(was)
    missing = [s for s in TAP_STRIDES if s not in last]
    if missing:
        raise ValueError(f"backbone has no features at stride(s) {missing}")
    return [last[s][0] for s in TAP_STRIDES], [last[s][1] for s in TAP_STRIDES]


class DenseModel(nn.Module):
    """A torchvision classifier (its modules adopted under their own names) plus a :class:`Decoder`.

    ``forward`` returns ``(class_logits (N, K), mask_logits (N, M, H, W))``; the class logits are bit for bit
    what the adopted torchvision model alone returns.
    """

    def __init__(self, classifier: nn.Module, in_channels: int, n_masks: int, channels: int = 32,
                 fine_channels: int = 0) -> None:
        super().__init__()
        self.family = "resnet" if hasattr(classifier, "layer1") else "features"
        for name, child in classifier.named_children():
            self.add_module(name, child)
        if self.family == "features":
            self.taps, widths = _feature_taps(self.features, in_channels)
        else:
            widths = [self.conv1.out_channels, *(self._block_width(getattr(self, f"layer{i}")) for i in (1, 2, 3))]
        self.decoder = Decoder(tuple(widths), n_masks, channels, fine_channels=fine_channels,
                               input_channels=in_channels)
        self.classifier_frozen = False

    def freeze_classifier(self) -> None:
        """Train the decoder alone: the backbone and classifier keep their weights and BatchNorm statistics
        bit for bit, so the tile scores (and every figure made from them) stay those of the classifier this
        model was initialised from, and a step costs the backbone's forward pass only."""
        self.classifier_frozen = True
        for name, param in self.named_parameters():
            if not name.startswith("decoder."):
                param.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> DenseModel:
        super().train(mode)
        if self.classifier_frozen:
            for name, child in self.named_children():
                if name != "decoder":
                    child.eval()
        return self

    @staticmethod
    def _block_width(layer: nn.Sequential) -> int:
        last = layer[-1]
        conv = getattr(last, "conv3", None) or last.conv2
        return conv.out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.classifier_frozen):
            logits, feats = self.encode(x)
        return logits, self.decoder(feats, x)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Class logits and the decoder's input features (strides 2, 4, 8, 16), one backbone pass."""
        feats: list[torch.Tensor] = []
        if self.family == "features":
            taps = set(self.taps)
            h = x
            for i, module in enumerate(self.features):
                h = module(h)
                if i in taps:
                    feats.append(h)
            pooled = torch.flatten(self.avgpool(h), 1)
            logits = self.classifier(pooled)
        else:
            h = self.relu(self.bn1(self.conv1(x)))
            feats.append(h)
            h = self.maxpool(h)
            for i in (1, 2, 3):
                h = getattr(self, f"layer{i}")(h)
                feats.append(h)
            h = self.layer4(h)
            logits = self.fc(torch.flatten(self.avgpool(h), 1))
        return logits, feats


class GatedProbabilityModel(nn.Module):
    """What the exported graph of a dense model computes, from ``input`` (N, C, H, W):

    - ``probs`` (N, K): class probabilities, exactly the classifier's;
    - ``masks`` (P, M, H, W): mask probabilities of the P windows where some class reaches its threshold
      (``thresholds``, the model's calibrated ones), the only windows a scan keeps masks for;
    - ``mask_index`` (P,) int64: which windows of the batch those are.

    The decoder runs on the positive windows only, so a scan pays for it in proportion to what it finds.
    """

    def __init__(self, model: DenseModel, thresholds: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("thresholds", torch.tensor(thresholds, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, feats = self.model.encode(x)
        probs = torch.sigmoid(logits)
        index = torch.nonzero((probs >= self.thresholds).any(dim=1)).reshape(-1)
        masks = self.model.decoder([f.index_select(0, index) for f in feats], x.index_select(0, index))
        return probs, torch.sigmoid(masks), index
