"""Backbones: logits of the right shape for any band count; RGB weights kept in the N-band stem."""

from __future__ import annotations

import pytest
import torch
import torchvision

from minewatch.errors import UserError
from minewatch.train.models import (
    BACKBONES,
    PRIOR_PROBABILITY,
    ProbabilityModel,
    adapt_conv_weight,
    build_model,
    first_conv,
)

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_gives_logits_for_n_bands(backbone):
    torch.manual_seed(0)
    model = build_model(backbone, 5, 3).eval()
    assert first_conv(model, backbone).in_channels == 5
    with torch.no_grad():
        out = model(torch.randn(2, 5, 64, 64))
    assert out.shape == (2, 3)
    head_bias = [p for n, p in model.named_parameters() if n.endswith("bias") and p.shape == (3,)][-1]
    assert torch.allclose(torch.sigmoid(head_bias), torch.full((3,), PRIOR_PROBABILITY))  # logits at the prior
    x = torch.randn(2, 5, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ProbabilityModel(model).eval()(x), torch.sigmoid(model(x)))


def test_first_conv_keeps_rgb_filters_from_a_weights_file(tmp_path):
    torch.manual_seed(1)
    rgb = torchvision.models.resnet18(weights=None)  # stands in for downloaded ImageNet weights
    path = tmp_path / "resnet18.pth"
    torch.save(rgb.state_dict(), path)
    model = build_model("resnet18", 5, 3, weights=path)
    w = model.conv1.weight.detach()
    src = rgb.conv1.weight.detach()
    assert torch.equal(w[:, :3], src)
    mean = src.mean(dim=1)
    for extra in (3, 4):  # extra bands: the RGB mean, rescaled per filter to the RGB filters' norm
        cos = torch.nn.functional.cosine_similarity(w[:, extra].flatten(1), mean.flatten(1), dim=1)
        assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)
        assert torch.allclose(w[:, extra].flatten(1).norm(dim=1), src.flatten(2).norm(dim=2).mean(dim=1), rtol=1e-4)
    # the rest of the backbone came from the file too; the head is new
    assert torch.equal(model.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    assert model.fc.out_features == 3


def test_weights_of_another_backbone_are_refused(tmp_path):
    path = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(UserError, match="do not fit backbone 'resnet18'"):
        build_model("resnet18", 4, 3, weights=path)
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(UserError, match="not a readable torchvision state_dict"):
        build_model("resnet18", 4, 3, weights=tmp_path / "junk.pth")


def test_unknown_backbone_is_a_user_error():
    with pytest.raises(UserError, match="unknown backbone"):
        build_model("vgg11", 3, 3)


def test_adapt_conv_weight_three_bands_is_identity_and_fewer_bands_sum():
    w = torch.randn(8, 3, 3, 3)
    assert torch.equal(adapt_conv_weight(w, 3), w)
    one = adapt_conv_weight(w, 1)
    assert torch.allclose(one[:, 0], w.sum(dim=1))
