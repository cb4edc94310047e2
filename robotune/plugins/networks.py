"""Backbones shared by the chunk policies: observation encoders, a residual MLP and a 1-D temporal U-Net.

Every backbone is a `ChunkNetwork`: it maps an optional input chunk, a conditioning vector and an
optional scalar time to an output chunk,

    chunk_in (B, H, D_in) or None,  cond (B, C),  t (B,) or None   ->   (B, H, D_out)

so one policy file can switch between them with the `backbone` config field. The conditioning
vector comes from an observation encoder (`obs_encoder` field); the only built-in one flattens the
normalised observation history. Image policies add theirs to `OBSERVATION_ENCODERS`: any module
that maps obs_norm (B, obs_horizon, ...) to (B, out_dim) and has an `out_dim` attribute.

The residual MLP and the U-Net have float32 NumPy twins for small-batch CPU inference in `fast_inference.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from robotune.core.policy import PolicyConfig

LAYER_NORM_EPS = 1e-5
POSITION_CHANNELS = 8  # unet: learned per-position input channels
# Methods with a time in [0, 1] (flow, MIP) multiply it by this before the sinusoidal embedding, so
# that it spans the same frequencies as diffusion's 100 integer timesteps.
UNIT_TIME_SCALE = 100.0


@dataclass
class BackbonePolicyConfig(PolicyConfig):
    """Network fields shared by every built-in chunk policy."""

    # "mlp" (ResidualMLP over the flattened chunk), "unet" (ConditionalUnet1D over time) or "plain_mlp"
    # (PlainMLP: the Linear-activation stack RL baselines use, for like-for-like comparisons)
    backbone: str = "mlp"
    obs_encoder: str = "flatten"  # a key of OBSERVATION_ENCODERS; "flatten" concatenates the obs history
    hidden_dim: int = 512  # mlp: width of every residual block
    num_blocks: int = 2  # mlp: residual blocks (2 blocks at width 512 is ~1.1M parameters); plain_mlp: hidden layers
    activation: str = "tanh"  # plain_mlp: hidden activation, "tanh", "relu" or "mish"
    # plain_mlp: orthogonal init (PPO's convention in SB3 and CleanRL) or torch's default Linear init
    # (what SB3's SAC actor uses)
    orthogonal_init: bool = True
    time_embed_dim: int = 64  # sinusoidal time-embedding width, for policies that condition on a time
    unet_channels: tuple[int, ...] = (64, 128, 256)  # unet: channels per level; horizon must divide by 2**(levels-1)
    unet_kernel_size: int = 5  # unet: temporal convolution width
    unet_groups: int = 8  # unet: GroupNorm groups (must divide every entry of unet_channels)
    fast_inference: bool = True  # sample small CPU batches with the NumPy twin of the mlp or unet (fast_inference.py)
    fast_inference_max_batch: int = 16  # largest batch sent to the NumPy twin; larger ones use torch


# ----------------------------------------------------------------------------- observation encoders


class FlattenObsEncoder(nn.Module):
    """obs_norm (B, obs_horizon, obs_dim) -> (B, obs_horizon * obs_dim), no parameters."""

    def __init__(self, obs_horizon: int, obs_dim: int) -> None:
        super().__init__()
        self.out_dim = obs_horizon * obs_dim

    def forward(self, obs_norm: torch.Tensor) -> torch.Tensor:
        return obs_norm.flatten(1)


# The hook for image observations: register a constructor (obs_horizon, obs_dim) -> encoder module here.
OBSERVATION_ENCODERS: dict[str, Callable[[int, int], nn.Module]] = {"flatten": FlattenObsEncoder}


def make_obs_encoder(config: BackbonePolicyConfig, obs_dim: int) -> nn.Module:
    if config.obs_encoder not in OBSERVATION_ENCODERS:
        raise ValueError(
            f"policy.obs_encoder '{config.obs_encoder}' is unknown; expected one of {sorted(OBSERVATION_ENCODERS)}"
        )
    return OBSERVATION_ENCODERS[config.obs_encoder](config.obs_horizon, obs_dim)


# ----------------------------------------------------------------------------- time embedding


class SinusoidalEmbedding(nn.Module):
    """t (B,) -> (B, dim): sin/cos at geometrically spaced frequencies (Transformer position code)."""

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"time_embed_dim must be even, got {dim}")
        half = dim // 2
        self.register_buffer("frequencies", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.frequencies[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


def time_embedding(dim: int) -> nn.Module:
    """Sinusoidal code then a small MLP, as in DDPM and Diffusion Policy."""
    return nn.Sequential(SinusoidalEmbedding(dim), nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))


# ----------------------------------------------------------------------------- residual MLP


def flat_network_input(network: nn.Module, chunk_in: torch.Tensor | None, cond: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
    """[flattened chunk_in, cond, time embedding] -> (B, H * D_in + C + time_embed_dim), for the MLP backbones."""
    parts = [cond]
    if network.in_channels:
        parts.insert(0, chunk_in.flatten(1))
    if network.time_embedding is not None:
        parts.append(network.time_embedding(t))
    return torch.cat(parts, dim=-1)


class ResidualBlock(nn.Module):
    """h + W2 mish(W1 LayerNorm(h)): pre-norm, so the identity path stays clean."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.linear1 = nn.Linear(dim, dim)
        self.linear2 = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.linear2(nn.functional.mish(self.linear1(self.norm(h))))


class ResidualMLP(nn.Module):
    """A ChunkNetwork over the flattened chunk: [chunk_in, cond, time embedding] -> residual blocks -> chunk.

    input Linear -> `num_blocks` pre-norm residual blocks -> LayerNorm -> output Linear.

    Conditioning enters only through the input layer (as in DPPO's MLP denoiser). That keeps the
    network affine in (cond, time embedding) up to the first block, which the NumPy twin exploits.
    """

    def __init__(
        self,
        horizon: int,
        in_channels: int,
        out_channels: int,
        cond_dim: int,
        hidden_dim: int = 512,
        num_blocks: int = 2,
        time_embed_dim: int = 0,
    ) -> None:
        super().__init__()
        self.horizon, self.in_channels, self.out_channels = horizon, in_channels, out_channels
        self.cond_dim, self.time_embed_dim = cond_dim, time_embed_dim
        self.time_embedding = time_embedding(time_embed_dim) if time_embed_dim else None
        self.input = nn.Linear(horizon * in_channels + cond_dim + time_embed_dim, hidden_dim)
        self.blocks = nn.ModuleList(ResidualBlock(hidden_dim) for _ in range(num_blocks))
        self.output_norm = nn.LayerNorm(hidden_dim, eps=LAYER_NORM_EPS)
        self.output = nn.Linear(hidden_dim, horizon * out_channels)

    def forward(self, chunk_in: torch.Tensor | None, cond: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """chunk_in (B, H, D_in) or None, cond (B, C), t (B,) or None -> (B, H, D_out)."""
        h = self.input(flat_network_input(self, chunk_in, cond, t))
        for block in self.blocks:
            h = block(h)
        return self.output(self.output_norm(h)).view(-1, self.horizon, self.out_channels)


# ----------------------------------------------------------------------------- 1-D temporal U-Net


class ConvBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish over (B, C, H)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.GroupNorm(groups, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.mish(self.norm(self.conv(x)))


class FiLMResidualBlock(nn.Module):
    """Two conv blocks; the conditioning vector sets a per-channel scale and bias between them (FiLM)."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.conv1 = ConvBlock(in_channels, out_channels, kernel_size, groups)
        self.conv2 = ConvBlock(out_channels, out_channels, kernel_size, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.skip = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, bias = self.film(cond)[:, :, None].chunk(2, dim=1)
        h = self.conv1(x) * scale + bias
        return self.conv2(h) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """A ChunkNetwork that convolves over the chunk's time axis (the Diffusion Policy U-Net design).

    Down path: two FiLM residual blocks per level, then a stride-2 conv (not after the last level).
    Middle: two blocks at the deepest width. Up path: concatenate the down path's output of the
    same length, two blocks, then a stride-2 transposed conv. The FiLM conditioning is [time embedding, cond] at every block.
    """

    def __init__(
        self,
        horizon: int,
        in_channels: int,
        out_channels: int,
        cond_dim: int,
        channels: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        groups: int = 8,
        time_embed_dim: int = 0,
    ) -> None:
        super().__init__()
        factor = 2 ** (len(channels) - 1)
        if horizon % factor:
            raise ValueError(f"policy.horizon ({horizon}) must be divisible by {factor} for a {len(channels)}-level unet")
        if any(c % groups for c in channels):
            raise ValueError(f"policy.unet_groups ({groups}) must divide every entry of policy.unet_channels {channels}")
        self.horizon, self.in_channels, self.out_channels = horizon, in_channels, out_channels
        self.cond_dim, self.time_embed_dim, self.channels, self.kernel_size = cond_dim, time_embed_dim, channels, kernel_size
        # A learned code per chunk position joins the input: without it a constant input (regression's
        # none, MIP's zeros) stays constant in time through the convolutions and GroupNorm zeroes it.
        self.position_code = nn.Parameter(0.1 * torch.randn(POSITION_CHANNELS, horizon))
        self.time_embedding = time_embedding(time_embed_dim) if time_embed_dim else None
        film_dim = cond_dim + time_embed_dim

        def block(c_in: int, c_out: int) -> FiLMResidualBlock:
            return FiLMResidualBlock(c_in, c_out, film_dim, kernel_size, groups)

        widths = [in_channels + POSITION_CHANNELS, *channels]
        self.down = nn.ModuleList()
        for level, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = level == len(channels) - 1
            resample = nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, stride=2, padding=1)
            self.down.append(nn.ModuleList([block(c_in, c_out), block(c_out, c_out), resample]))
        self.middle = nn.ModuleList([block(channels[-1], channels[-1]), block(channels[-1], channels[-1])])
        self.up = nn.ModuleList()
        for c_out, c_in in reversed(list(zip(channels[:-1], channels[1:]))):
            upsample = nn.ConvTranspose1d(c_out, c_out, 4, stride=2, padding=1)
            self.up.append(nn.ModuleList([block(2 * c_in, c_out), block(c_out, c_out), upsample]))
        self.final = nn.Sequential(ConvBlock(channels[0], channels[0], kernel_size, groups), nn.Conv1d(channels[0], out_channels, 1))

    def forward(self, chunk_in: torch.Tensor | None, cond: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """chunk_in (B, H, D_in) or None, cond (B, C), t (B,) or None -> (B, H, D_out)."""
        if self.time_embedding is not None:
            cond = torch.cat([self.time_embedding(t), cond], dim=-1)
        x = self.position_code.expand(cond.shape[0], -1, -1)  # (B, channels, H): convolve over time
        if self.in_channels:
            x = torch.cat([chunk_in.transpose(1, 2), x], dim=1)
        skips = []
        for block1, block2, downsample in self.down:
            x = block2(block1(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for block in self.middle:
            x = block(x, cond)
        # Each up level joins the skip of equal length, then doubles the length; the top skip is unused.
        for block1, block2, upsample in self.up:
            x = block2(block1(torch.cat([x, skips.pop()], dim=1), cond), cond)
            x = upsample(x)
        return self.final(x).transpose(1, 2)


class PlainMLP(nn.Module):
    """A ChunkNetwork as RL baselines build their actors: [chunk_in, cond, time embedding] -> (Linear, act) x L -> Linear.

    With `orthogonal_init`: gain sqrt(2) on hidden layers and 0.01 on the output (the PPO convention
    of SB3 and CleanRL: the initial policy sits near its mean action), zero biases; otherwise torch's
    default Linear init (SB3's SAC actor).
    """

    ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "mish": nn.Mish}

    def __init__(
        self,
        horizon: int,
        in_channels: int,
        out_channels: int,
        cond_dim: int,
        hidden_dim: int,
        num_layers: int,
        activation: str,
        time_embed_dim: int = 0,
        orthogonal_init: bool = True,
    ) -> None:
        super().__init__()
        self.orthogonal_init = orthogonal_init
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"policy.activation must be one of {sorted(self.ACTIVATIONS)}, got '{activation}'")
        self.horizon, self.in_channels, self.out_channels = horizon, in_channels, out_channels
        self.time_embedding = time_embedding(time_embed_dim) if time_embed_dim else None
        widths = [horizon * in_channels + cond_dim + time_embed_dim] + [hidden_dim] * num_layers
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [self._linear(width_in, width_out, math.sqrt(2)), self.ACTIVATIONS[activation]()]
        self.layers = nn.Sequential(*layers, self._linear(widths[-1], horizon * out_channels, 0.01))

    def _linear(self, width_in: int, width_out: int, gain: float) -> nn.Linear:
        linear = nn.Linear(width_in, width_out)
        if self.orthogonal_init:
            nn.init.orthogonal_(linear.weight, gain=gain)
            nn.init.zeros_(linear.bias)
        return linear

    def forward(self, chunk_in: torch.Tensor | None, cond: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """chunk_in (B, H, D_in) or None, cond (B, C), t (B,) or None -> (B, H, D_out)."""
        return self.layers(flat_network_input(self, chunk_in, cond, t)).view(-1, self.horizon, self.out_channels)


def make_chunk_network(
    config: BackbonePolicyConfig, in_channels: int, out_channels: int, cond_dim: int, uses_time: bool
) -> nn.Module:
    """The backbone named by `config.backbone`, shaped for (B, horizon, in_channels) -> (B, horizon, out_channels)."""
    time_dim = config.time_embed_dim if uses_time else 0
    if config.backbone == "mlp":
        return ResidualMLP(config.horizon, in_channels, out_channels, cond_dim, config.hidden_dim, config.num_blocks, time_dim)
    if config.backbone == "unet":
        return ConditionalUnet1D(
            config.horizon,
            in_channels,
            out_channels,
            cond_dim,
            tuple(config.unet_channels),
            config.unet_kernel_size,
            config.unet_groups,
            time_dim,
        )
    if config.backbone == "plain_mlp":
        return PlainMLP(
            config.horizon, in_channels, out_channels, cond_dim, config.hidden_dim, config.num_blocks, config.activation, time_dim,
            config.orthogonal_init,
        )
    raise ValueError(f"policy.backbone must be 'mlp', 'unet' or 'plain_mlp', got '{config.backbone}'")
