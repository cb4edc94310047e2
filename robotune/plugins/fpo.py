"""FPO (McAllister, Ge, Yi et al. 2025, "Flow Matching Policy Gradients"): PPO-clip on a flow-matching
policy, with the likelihood ratio replaced by the drop in its conditional flow-matching loss.

For each sampled chunk a, N = `policy.rl_mc_samples` pairs (ε_j, τ_j) are drawn once and stored with
it; ℓ_θ,j = ‖v_θ(x_τj, o, τ_j) − (a − ε_j)‖² over the executed actions, and

    ρ̂ = exp( mean_j ℓ_old,j − mean_j ℓ_θ,j ),      L = −E[min(ρ̂ A, clip(ρ̂, 1 ± ε) A)] + c_v E[(V(o) − R)²]

The flow policy's `log_prob` already is −mean_j ℓ_θ,j on the stored pairs (flow_matching.py), so
PPO's ratio exp(log π_θ − log π_old) is exactly ρ̂ and this algorithm *is* PPO (ppo.py) on the flow
policy: this file adds only FPO's defaults and refuses a policy without the flow surrogate (a
diffusion policy under PPO would silently be scored by its denoising chain instead). The fine-tuned
checkpoint is the flow policy itself, so eval and deploy need nothing new.

    robotune train algo=fpo policy=flow init_from=<flow BC checkpoint or run dir>
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from robotune.core.algorithm import TrainingContext
from robotune.core.registry import register
from robotune.plugins.flow_matching import FlowMatchingPolicy
from robotune.plugins.ppo import PPO, PPOConfig


@dataclass
class FPOConfig(PPOConfig):
    """PPO settings for fine-tuning a trained flow policy; the clip range is FPO's playground value."""

    num_envs: int = 8
    rollout_steps: int = 128
    batch_size: int = 64
    epochs: int = 5
    lr: float = 3e-5  # a trained policy: small steps, so the first updates do not undo behaviour cloning
    critic_lr: float = 1e-3
    clip_range: float = 0.05  # FPO's playground ε (its humanoid config uses 0.01)
    target_kl: float = 0.05
    critic_warmup_iterations: int = 2
    reward_scaling: bool = True
    # std of the Gaussian perturbation of each sampled chunk (normalised units), FPO's `perturb_action_std`
    # (0.05 in its humanoid config); it becomes the policy's `rl_action_noise` and explores where the
    # behaviour-cloned flow maps every noise to nearly the same chunk
    perturb_action_std: float = 0.0


@register("algorithm", "fpo")
class FPO(PPO):
    """PPO on a flow-matching policy through its FPO surrogate."""

    config: FPOConfig

    def __init__(self, config: FPOConfig, context: TrainingContext) -> None:
        if not isinstance(context.policy, FlowMatchingPolicy):
            raise TypeError(
                f"algo=fpo fine-tunes a flow-matching policy (policy=flow) through its flow-matching loss; "
                f"init_from holds '{context.policy.config.name}' (diffusion: algo=dppo; any chunk policy: algo=residual_ppo)"
            )
        context.policy.config = dataclasses.replace(context.policy.config, rl_action_noise=config.perturb_action_std)
        super().__init__(config, context)
