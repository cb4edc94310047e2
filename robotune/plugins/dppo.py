"""DPPO (Ren et al., ICLR 2025, "Diffusion Policy Policy Optimization"): PPO through the denoising chain.

The two-level MDP. Every environment decision runs K DDIM steps x_0 (noise) -> x_K (the chunk); each
step is a Gaussian, so each has an exact log-probability and the (decision, denoising step) pairs
are PPO's samples. The base policy stays frozen; a copy of its denoiser, fine-tuned, runs the last
K′ = `finetuned_steps` steps (earlier steps use the base). In training, with the diffusion
policy's coefficient table (`step_coefficients`, DDIM at η = `train_eta` = 1):

    x_{k+1} = μ_k(x_k, o) + σ̃_k z,   z ~ N(0, I) clipped to ±`noise_clip`,   σ̃_k = max(σ_k, `min_sampling_std`)
    log π_k = mean over executed actions and dims of clip(log N(x_{k+1}; μ_θ,k, max(σ_k, `min_logprob_std`)²), `log_prob_min`, `log_prob_max`)

μ_k clips the predicted x0 to [-1, 1] (the base's `clip_sample`, DPPO's `denoised_clip_value`).
Evaluation and deployment run the same two networks with DDIM η = 0 and no noise.

The loss over samples (d, i), d a decision and i < K′ its fine-tuned step (i = K′ − 1 the last):

    A_{d,i} = γ_den^{K′−1−i} Â_d                 (Â_d: GAE over decisions, normalised per minibatch)
    ε_i     = ε_0 + (ε − ε_0) (e^{r i/(K′−1)} − 1) / (e^r − 1)        r = `clip_range_rate`
    L       = −E[min(ρ A, clip(ρ, 1 ± ε_i) A)] + c_v E[(V(o) − R)²] − β E[log π_θ,i(base chain)]

ρ = exp(log π_θ,i − log π_old,i). Noisy early steps get the tight ε_0 = `clip_range_first`, the
last step ε = `clip_range`. The last term (`bc_loss_coef` β, off by default as in every DPPO
config) scores chains sampled by the frozen base under the fine-tuned steps. Rewards are scaled
by a running return std and the critic warms up alone first (ppo.py). Defaults are DPPO's
robomimic-state settings (the reference notes' table) except the sizes, scaled to a 2-core CPU.

    robotune train algo=dppo policy=diffusion init_from=<diffusion BC checkpoint or run dir>
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import torch

from robotune.core.algorithm import TrainingContext
from robotune.core.normalization import Normalizer
from robotune.core.registry import register
from robotune.core.spec import TaskSpec
from robotune.plugins.diffusion import DiffusionPolicy, StepCoefficients, step_coefficients
from robotune.plugins.ppo import PPO, PPOConfig, PolicySamples
from robotune.plugins.wrapped_policy import WrappedPolicy, WrappedPolicyConfig
from robotune.rollout.chunk_rollout import DecisionBatch

AFFINE_NAMES = ("r_xt", "r_out", "c_x0", "c_out", "c_xt")


@dataclass
class DenoisingFinetunedConfig(WrappedPolicyConfig):
    finetuned_steps: int = 10  # K′: the last K′ denoising steps run the fine-tuned denoiser (DPPO: 10 of 20)
    train_eta: float = 1.0  # DDIM η while sampling for RL; η = 1 makes every step a proper Gaussian
    min_sampling_std: float = 0.1  # floor on each step's std while exploring (DPPO: 0.1, furniture 0.04)
    min_logprob_std: float = 0.1  # floor on the std used in log-probs; smaller lets the ratio explode (DPPO: 0.1)
    noise_clip: float = 3.0  # |z| ceiling on each step's noise (DPPO's randn_clip_value)
    log_prob_min: float = -5.0  # per-entry log-density clipped to [min, max] (DPPO: [-5, 2])
    log_prob_max: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.finetuned_steps < 1:
            raise ValueError(f"finetuned_steps must be >= 1, got {self.finetuned_steps}")


@register("policy", "diffusion_finetuned")
class DenoisingFinetunedPolicy(WrappedPolicy):
    """A frozen diffusion policy whose last K′ denoising steps run a fine-tuned copy of its denoiser."""

    config: DenoisingFinetunedConfig
    base: DiffusionPolicy

    def __init__(self, config: DenoisingFinetunedConfig, spec: TaskSpec, obs_normalizer: Normalizer, action_normalizer: Normalizer):
        super().__init__(config, spec, obs_normalizer, action_normalizer)
        if not isinstance(self.base, DiffusionPolicy):
            raise TypeError(f"DPPO fine-tunes a diffusion policy's denoising steps; policy.base is '{config.base['name']}'")
        steps = self.base.config.num_inference_steps
        if config.finetuned_steps > steps:
            raise ValueError(f"finetuned_steps ({config.finetuned_steps}) exceeds the base's num_inference_steps ({steps})")
        self.first_finetuned = steps - config.finetuned_steps
        self.finetuned_network = copy.deepcopy(self.base.network).requires_grad_(True)
        self.train_coefficients = step_coefficients(self.base.config, "ddim", eta=config.train_eta)

    def base_loaded(self) -> None:
        self.finetuned_network.load_state_dict(self.base.network.state_dict())

    # ------------------------------------------------------------------ sampling

    def sample_chain(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None, base_only: bool = False):
        """obs_norm (B, To, Do) -> the fine-tuned part of the chain (B, K′ + 1, H, Da), its first entry
        the input of the first fine-tuned step and its last the chunk. `base_only` samples the frozen base."""
        coef = self.base.coefficients(True) if deterministic else self.train_coefficients
        cond = self.base.obs_encoder(obs_norm)
        batch = obs_norm.shape[0]
        shape = (batch, self.config.horizon, self.action_dim)
        clip = self.config.noise_clip
        x = torch.randn(shape, generator=generator, device=obs_norm.device).clamp(-clip, clip)
        chain = []
        for k, t in enumerate(coef.timesteps):
            if k == self.first_finetuned:
                chain.append(x)
            network = self.finetuned_network if k >= self.first_finetuned and not base_only else self.base.network
            out = network(x, cond, torch.full((batch,), t, device=x.device))
            x = self.base._step_mean(x, out, {name: getattr(coef, name)[k] for name in AFFINE_NAMES})
            if not deterministic:
                z = torch.randn(shape, generator=generator, device=x.device).clamp(-clip, clip)
                x = x + max(coef.sigma[k], self.config.min_sampling_std) * z
            if k >= self.first_finetuned:
                chain.append(x)
        return torch.stack(chain, dim=1)

    def sample_chunk_norm(self, obs_norm: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """obs_norm (B, To, Do) -> chunk (B, H, Da): DDIM η = 0 if deterministic, else the training sampler."""
        return self.sample_chain(obs_norm, deterministic, generator)[:, -1]

    # ------------------------------------------------------------------ likelihood (RL)

    def step_log_prob(self, obs_norm: torch.Tensor, x: torch.Tensor, x_next: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """log π_i(x_next | x, o) (B,) for fine-tuned step index i = step (B,) in [0, K′), as in the module docstring."""
        coef: StepCoefficients = self.train_coefficients
        k = step + self.first_finetuned
        per_sample = lambda name: torch.tensor(getattr(coef, name), dtype=x.dtype, device=x.device)[k].view(-1, 1, 1)  # noqa: E731
        timestep = torch.tensor(coef.timesteps, device=x.device)[k]
        out = self.finetuned_network(x, self.base.obs_encoder(obs_norm), timestep)
        mean = self.base._step_mean(x, out, {name: per_sample(name) for name in AFFINE_NAMES})
        std = per_sample("sigma").clamp(min=self.config.min_logprob_std)
        executed = self.config.act_steps
        z = (x_next[:, :executed] - mean[:, :executed]) / std
        log_density = -0.5 * z.square() - torch.log(std) - 0.5 * math.log(2 * math.pi)
        return log_density.clamp(self.config.log_prob_min, self.config.log_prob_max).mean(dim=(1, 2))

    def chain_log_probs(self, obs_norm: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """obs_norm (B, To, Do), chain (B, K′ + 1, H, Da) -> log π_i for every fine-tuned step (B, K′), one network call."""
        batch, steps = chain.shape[0], self.config.finetuned_steps
        step = torch.arange(steps, device=chain.device).repeat(batch)
        log_prob = self.step_log_prob(
            obs_norm.repeat_interleave(steps, dim=0), chain[:, :-1].flatten(0, 1), chain[:, 1:].flatten(0, 1), step
        )
        return log_prob.view(batch, steps)

    def sample_with_trace(self, obs_norm: torch.Tensor, generator: torch.Generator | None):
        """obs_norm (B, To, Do) -> chunk_norm (B, H, Da), {"chain": (B, K′ + 1, H, Da)}, Σ_i log π_i (B,)."""
        chain = self.sample_chain(obs_norm, False, generator)
        return chain[:, -1], {"chain": chain}, self.chain_log_probs(obs_norm, chain).sum(-1)

    def log_prob(self, obs_norm: torch.Tensor, trace: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ over fine-tuned steps of log π_i (B,) (DPPO itself scores the steps one by one: `chain_log_probs`)."""
        return self.chain_log_probs(obs_norm, trace["chain"]).sum(-1)


@dataclass
class DPPOConfig(PPOConfig):
    """DPPO's robomimic-state defaults (reference notes), with fewer environments for a CPU."""

    num_envs: int = 8
    rollout_steps: int = 128
    batch_size: int = 512  # (decision, denoising step) samples per minibatch
    epochs: int = 10
    lr: float = 1e-4  # DPPO's actor learning rate
    critic_lr: float = 1e-3
    gamma: float = 0.999
    max_grad_norm: float = 1.0
    target_kl: float = 1.0  # DPPO's value: effectively never stops
    critic_warmup_iterations: int = 2  # DPPO: 0-2
    reward_scaling: bool = True
    clip_range: float = 0.01  # ε of the last denoising step
    clip_range_first: float = 1e-3  # ε_0 of the first fine-tuned (noisiest) step
    clip_range_rate: float = 3.0  # r: how fast ε grows from the first to the last fine-tuned step
    denoising_discount: float = 0.99  # γ_den: earlier steps' advantages count less
    bc_loss_coef: float = 0.0  # β of the optional likelihood of base-sampled chains (off in DPPO's configs)
    # the fine-tuned policy (copied into policy.* of the saved checkpoint)
    finetuned_steps: int = 10
    train_eta: float = 1.0
    min_sampling_std: float = 0.1
    min_logprob_std: float = 0.1
    noise_clip: float = 3.0


@register("algorithm", "dppo")
class DPPO(PPO):
    """PPO over (decision, denoising step) samples of a `diffusion_finetuned` policy; rollouts and GAE from ppo.py."""

    config: DPPOConfig
    policy: DenoisingFinetunedPolicy

    def __init__(self, config: DPPOConfig, context: TrainingContext) -> None:
        if not isinstance(context.policy, DiffusionPolicy):
            raise TypeError(f"algo=dppo fine-tunes a diffusion policy; init_from holds '{context.policy.config.name}'")
        denoising_steps = context.policy.config.num_inference_steps
        if not 1 <= config.finetuned_steps <= denoising_steps:
            raise ValueError(f"algo.finetuned_steps must be in [1, {denoising_steps}] (the base's num_inference_steps), got {config.finetuned_steps}")
        policy = DenoisingFinetunedPolicy.wrap(
            context.policy,
            finetuned_steps=config.finetuned_steps,
            train_eta=config.train_eta,
            min_sampling_std=config.min_sampling_std,
            min_logprob_std=config.min_logprob_std,
            noise_clip=config.noise_clip,
        )
        super().__init__(config, dataclasses.replace(context, policy=policy))
        steps = policy.config.finetuned_steps
        fraction = torch.arange(steps, dtype=torch.float32) / max(steps - 1, 1)
        rate = config.clip_range_rate
        growth = (torch.exp(rate * fraction) - 1) / (math.exp(rate) - 1) if steps > 1 else torch.ones(1)
        self.step_clip = (config.clip_range_first + (config.clip_range - config.clip_range_first) * growth).to(context.device)
        self.step_weight = (config.denoising_discount ** torch.arange(steps - 1, -1, -1, dtype=torch.float32)).to(context.device)

    def policy_samples(self, batch: DecisionBatch, obs_norm: torch.Tensor) -> PolicySamples:
        """Samples are (decision, fine-tuned step) pairs, index = decision * K′ + step."""
        policy, steps = self.policy, self.policy.config.finetuned_steps
        chain = batch.payload["trace.chain"]  # (D, K′ + 1, H, Da)
        with torch.no_grad():
            old_log_prob = policy.chain_log_probs(obs_norm, chain)  # (D, K′), under the weights that sampled

        def log_ratio(index: torch.Tensor) -> torch.Tensor:
            decision, step = index // steps, index % steps
            new = policy.step_log_prob(obs_norm[decision], chain[decision, step], chain[decision, step + 1], step)
            return new - old_log_prob[decision, step]

        def bc_loss(index: torch.Tensor) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
            if self.config.bc_loss_coef == 0:
                return 0.0, {}
            decision, step = index // steps, index % steps
            with torch.no_grad():
                base_chain = policy.sample_chain(obs_norm[decision], False, self.context.generator, base_only=True)
            rows = torch.arange(len(index), device=index.device)
            loss = -policy.step_log_prob(obs_norm[decision], base_chain[rows, step], base_chain[rows, step + 1], step).mean()
            return self.config.bc_loss_coef * loss, {"bc_loss": loss.detach()}

        return PolicySamples(
            count=len(batch) * steps,
            decision=lambda index: index // steps,
            log_ratio=log_ratio,
            clip_range=lambda index: self.step_clip[index % steps],
            advantage_weight=lambda index: self.step_weight[index % steps],
            extra_loss=bc_loss,
        )
