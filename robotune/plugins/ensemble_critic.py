"""An MLP critic ensemble evaluated as one batched network.

Each layer holds all E members' weights in one (E, in, out) tensor, so a forward pass is one
`baddbmm` per layer instead of a Python loop over E networks: for SAC's twin critics that halves
the kernel launches, and for REDQ/SAC-N-sized ensembles it is the difference that matters.

    h_0 = x (broadcast to every member),   h_{l+1} = act(LN(h_l W_l[e] + b_l[e])),   out = h_L W[e] + b[e]

LayerNorm after each hidden layer (optional) is what ReBRAC and SAC-RND found stabilises offline
critics. A Q critic concatenates [obs, action] at the input; a value critic (action_dim 0) takes obs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robotune.core.critic import Critic, CriticConfig
from robotune.core.registry import register

ACTIVATIONS = {"relu": nn.functional.relu, "tanh": torch.tanh, "mish": nn.functional.mish}
ACTIVATION_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "mish": nn.Mish}


@dataclass
class EnsembleCriticConfig(CriticConfig):
    hidden_dims: tuple[int, ...] = (256, 256)
    activation: str = "relu"  # "relu", "tanh" or "mish"
    layer_norm: bool = False  # LayerNorm after every hidden layer (ReBRAC, SAC-RND)
    # Orthogonal init with gain sqrt(2) on hidden layers and 1 on the output (PPO implementations'
    # convention, as SB3 and CleanRL do); False keeps torch's default Linear init.
    orthogonal_init: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"critic.activation must be one of {sorted(ACTIVATIONS)}, got '{self.activation}'")
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            raise ValueError(f"critic.hidden_dims must be a non-empty list of positive widths, got {self.hidden_dims}")


def select_members(tensor: torch.Tensor, members: slice) -> torch.Tensor:
    """tensor[members] along the leading member axis; all members are the tensor itself, since even a full
    slice costs a slice op, and its backward, in every pass."""
    return tensor if members == slice(None) else tensor[members]


class EnsembleLinear(nn.Module):
    """E independent Linear layers applied as one batched matmul: (E, B, in) -> (E, B, out)."""

    def __init__(self, members: int, in_dim: int, out_dim: int, orthogonal_gain: float | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim))
        for e in range(members):  # each member initialised as its own nn.Linear (out, in) would be
            linear_weight = torch.empty(out_dim, in_dim)
            if orthogonal_gain is None:
                nn.init.kaiming_uniform_(linear_weight, a=math.sqrt(5))
                bound = 1 / math.sqrt(in_dim)
                nn.init.uniform_(self.bias.data[e], -bound, bound)
            else:
                nn.init.orthogonal_(linear_weight, gain=orthogonal_gain)
                nn.init.zeros_(self.bias.data[e])
            self.weight.data[e] = linear_weight.T

    def forward(self, h: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        return torch.baddbmm(select_members(self.bias, members), h, select_members(self.weight, members))


@register("critic", "mlp")
class EnsembleCritic(Critic):
    """`num_members` MLPs with the same shape, run as one batched network; see the module docstring."""

    config_class = EnsembleCriticConfig
    config: EnsembleCriticConfig

    def __init__(self, config: EnsembleCriticConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__(config, obs_dim, action_dim)
        members, dims = config.num_members, (obs_dim + action_dim, *config.hidden_dims)
        hidden_gain = math.sqrt(2) if config.orthogonal_init else None
        self.hidden = nn.ModuleList(EnsembleLinear(members, i, o, hidden_gain) for i, o in zip(dims[:-1], dims[1:]))
        self.norms = nn.ParameterList()
        if config.layer_norm:  # per-member LayerNorm affine, (E, 1, width) gain then shift
            for width in config.hidden_dims:
                self.norms.append(nn.Parameter(torch.ones(members, 1, width)))
                self.norms.append(nn.Parameter(torch.zeros(members, 1, width)))
        self.output = EnsembleLinear(members, dims[-1], 1, 1.0 if config.orthogonal_init else None)
        self.activation = ACTIVATIONS[config.activation]

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        """x (B, in) -> (E, B), or (E', B) for the members selected by `members`."""
        h = x.unsqueeze(0).expand(len(range(self.config.num_members)[members]), -1, -1)
        for index, layer in enumerate(self.hidden):
            h = layer(h, members)
            if self.config.layer_norm:
                gain, shift = select_members(self.norms[2 * index], members), select_members(self.norms[2 * index + 1], members)
                h = nn.functional.layer_norm(h, h.shape[-1:]) * gain + shift
            h = self.activation(h)
        return self.output(h, members).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        if self.action_dim:
            raise ValueError(f"this critic was built for Q(s, a) with action_dim {self.action_dim}; call q_value")
        return self(obs)

    def q_value(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if action.shape[-1] != self.action_dim:
            raise ValueError(f"critic expects actions of dim {self.action_dim}, got {tuple(action.shape)}")
        return self(torch.cat([obs, action], dim=-1))

    def first_q_value(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q_0(s, a) (B,), running member 0's weights alone: TD3's actor loss needs no other member."""
        if action.shape[-1] != self.action_dim:
            raise ValueError(f"critic expects actions of dim {self.action_dim}, got {tuple(action.shape)}")
        return self(torch.cat([obs, action], dim=-1), slice(0, 1))[0]

    def member(self, index: int) -> nn.Sequential:
        """Member `index` as a plain nn.Sequential with copied weights (for inspection and tests)."""
        layers: list[nn.Module] = []
        for layer_index, layer in enumerate(self.hidden):
            linear = nn.Linear(*layer.weight.shape[1:])
            linear.weight.data.copy_(layer.weight.data[index].T)
            linear.bias.data.copy_(layer.bias.data[index, 0])
            layers.append(linear)
            if self.config.layer_norm:
                norm = nn.LayerNorm(linear.out_features, elementwise_affine=True)
                norm.weight.data.copy_(self.norms[2 * layer_index].data[index, 0])
                norm.bias.data.copy_(self.norms[2 * layer_index + 1].data[index, 0])
                layers.append(norm)
            layers.append(ACTIVATION_MODULES[self.config.activation]())
        out = nn.Linear(self.output.weight.shape[1], 1)
        out.weight.data.copy_(self.output.weight.data[index].T)
        out.bias.data.copy_(self.output.bias.data[index, 0])
        return nn.Sequential(*layers, out)
