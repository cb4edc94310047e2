import pytest
import torch

from robotune.plugins.networks import (
    OBSERVATION_ENCODERS,
    BackbonePolicyConfig,
    ConditionalUnet1D,
    ResidualMLP,
    make_chunk_network,
    make_obs_encoder,
)


@pytest.mark.parametrize("backbone", ["mlp", "unet"])
@pytest.mark.parametrize("in_channels,uses_time", [(2, True), (0, False)])
def test_backbones_map_chunks_to_chunks(backbone, in_channels, uses_time):
    config = BackbonePolicyConfig(horizon=8, backbone=backbone, hidden_dim=32, unet_channels=(16, 32), unet_groups=4, time_embed_dim=8)
    net = make_chunk_network(config, in_channels=in_channels, out_channels=3, cond_dim=5, uses_time=uses_time)
    chunk_in = torch.randn(4, 8, in_channels) if in_channels else None
    out = net(chunk_in, torch.randn(4, 5), torch.arange(4) if uses_time else None)
    assert out.shape == (4, 8, 3)


def test_default_mlp_is_in_the_one_to_two_million_parameter_range():
    net = ResidualMLP(horizon=16, in_channels=2, out_channels=2, cond_dim=12, time_embed_dim=64)
    assert 1_000_000 < sum(p.numel() for p in net.parameters()) < 2_000_000


def test_unet_errors_name_the_fields():
    with pytest.raises(ValueError, match="policy.horizon"):
        ConditionalUnet1D(horizon=6, in_channels=2, out_channels=2, cond_dim=4, channels=(8, 16, 32), groups=4)
    with pytest.raises(ValueError, match="policy.unet_groups"):
        ConditionalUnet1D(horizon=8, in_channels=2, out_channels=2, cond_dim=4, channels=(6, 12), groups=4)


def test_unknown_encoder_and_backbone_are_named():
    with pytest.raises(ValueError, match="policy.obs_encoder"):
        make_obs_encoder(BackbonePolicyConfig(obs_encoder="resnet18"), obs_dim=3)
    with pytest.raises(ValueError, match="policy.backbone"):
        make_chunk_network(BackbonePolicyConfig(backbone="transformer"), 2, 2, 4, True)


def test_encoder_hook_accepts_a_new_encoder():
    class MeanEncoder(torch.nn.Module):
        def __init__(self, obs_horizon, obs_dim):
            super().__init__()
            self.out_dim = obs_dim

        def forward(self, obs_norm):
            return obs_norm.mean(dim=1)

    OBSERVATION_ENCODERS["mean"] = MeanEncoder
    try:
        encoder = make_obs_encoder(BackbonePolicyConfig(obs_encoder="mean"), obs_dim=3)
        assert encoder(torch.ones(2, 2, 3)).shape == (2, encoder.out_dim)
    finally:
        del OBSERVATION_ENCODERS["mean"]
