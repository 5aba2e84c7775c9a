"""bsa.models.population: K UNets called as one vmapped network give each member's own outputs
and gradients (what a population trainer needs to train K weightings at once)."""

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel

from bsa.models.population import Population, group_norm
from bsa.models.unet import audioldm_unet_config


def test_group_norm_by_hand_and_against_torch():
    """Two groups of two channels, one position each: x = [1, 3 | 2, 6] → each group (a, b) maps
    to (−1, +1) (mean (a+b)/2, biased std |a−b|/2); then γ = (1, 2, 3, 4), β = (0, 0, 0, 1)."""
    x = torch.tensor([[1.0, 3.0, 2.0, 6.0]]).reshape(1, 4, 1)
    y = group_norm(x, 2, torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 0.0, 0.0, 1.0]), 0.0)
    assert y.flatten().tolist() == pytest.approx([-1.0, 2.0, -3.0, 5.0])
    x = torch.randn(3, 8, 5, 4)
    norm = torch.nn.GroupNorm(4, 8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    torch.testing.assert_close(group_norm(x, 4, norm.weight, norm.bias, norm.eps), norm(x))


def _members(k=3):
    torch.manual_seed(0)
    config = audioldm_unet_config("tiny", text_dim=6, latent_channels=4, sample_size=(8, 4))
    base = UNet2DConditionModel(**config).eval()
    members = [copy.deepcopy(base) for _ in range(k)]
    for m in members:
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return members


def _call(unet, z, t, text):
    return unet(z, t, encoder_hidden_states=None, class_labels=text).sample


def test_population_gives_each_member_its_outputs_and_gradients():
    members = _members()
    pop = Population(members)
    z, t, text = torch.randn(3, 2, 4, 8, 4), torch.tensor([10, 900]), torch.randn(2, 6)
    # shared inputs, then one input per member
    shared = pop(z[0], t, encoder_hidden_states=None, class_labels=text, in_dims=(None, None)).sample
    own = pop(z, t, encoder_hidden_states=None, class_labels=text, in_dims=(0, None)).sample
    for k, m in enumerate(members):
        torch.testing.assert_close(shared[k], _call(m, z[0], t, text), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(own[k], _call(m, z[k], t, text), atol=1e-5, rtol=1e-4)
    # the sum of the members' losses: each stacked gradient slice is that member's own gradient
    own.pow(2).mean(dim=(1, 2, 3, 4)).sum().backward()
    names = pop.names
    for k, m in enumerate(members):
        _call(m, z[k], t, text).pow(2).mean().backward()
        for name, stacked in zip(names, pop.stacked, strict=True):
            torch.testing.assert_close(
                stacked.grad[k], dict(m.named_parameters())[name].grad, atol=1e-5, rtol=1e-4
            )
    # a member comes back as an ordinary UNet with its parameters
    back = pop.member(1, members[0])
    torch.testing.assert_close(_call(back, z[1], t, text), _call(members[1], z[1], t, text))
    with pytest.raises(ValueError, match="at least one member"):
        Population([])
