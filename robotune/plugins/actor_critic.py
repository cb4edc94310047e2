"""The off-policy actor-critic engine, offline (`algo=offline`) and online (`algo=actor_critic`).

Offline RL methods share one learner and differ in a term or two (offline_rl.md, section 1), so
this file is the learner and each method is a regularizer (`regularizer=[td3_bc]`, or several).
One `step()` is one gradient update. With `actor=td3` (Fujimoto et al. 2018; CORL's TD3+BC):

    ã'   = clip(π̄(s') + clip(ε, ±c), ±1),   ε ~ N(0, σ²)               target policy smoothing
    y    = r + γ (1 − d) [min_e Q̄_e(s', ã') − Σ_k critic_term_k(s', ã')]
    L_Q  = Σ_e E[(Q_e(s, a) − y)²]                                        one batched ensemble
    L_π  = −c_q · E[Q(s, π(s))] / n + Σ_k actor_term_k(s, π(s), Q)        every `policy_freq` updates
    n    = E|Q(s, π(s))| (detached) if normalize_q else 1
    Q̄, π̄ ← (1 − τ) Q̄ + τ Q, (1 − τ) π̄ + τ π                            after each actor update

A generative actor (flow matching, diffusion) works as a TD3 actor: π(s) is its sample, and the
gradient of Q flows back through its integration steps; `policy_loss_weight` adds its own training
loss on the data as the behaviour-cloning anchor (Diffusion-QL, FQL).

Q is member 0 (`actor_q=first`, TD3) or the minimum over members (`actor_q=min`, ReBRAC, SAC-RND).
With `actor=sac` (Haarnoja et al. 2018) the actor is stochastic, ã' ~ π(·|s') with no smoothing,
y gains −α log π(ã'|s'), L_π gains α E[log π(ã|s)], and α is tuned to the target entropy −|A|;
the actor updates every step. Units: observations z-scored and actions min/max-normalised
(`robotune/plugins/offline_data.py`), so TD3's noise (σ 0.2, c 0.5) is in units of half the
action range, as CORL's `max_action` = 1.

Regularizers see dict batches in those units (obs, action, reward, next_obs, next_action, bootstrap
= γ (1 − terminated)) plus `q_target`, the critic's target y for the batch; a regularizer that
needs the critic itself (A2PR's advantage) defines `attach_critic(critic)`.

Online (`algo=actor_critic`) takes `env_steps_per_step` environment steps per step (Gaussian
exploration noise for a TD3 actor), stores them in the memory-mapped replay buffer, and updates on
batches that mix a fraction `offline_fraction` of an offline dataset (`offline_data`). With
`init_from=<offline run>` and `critic_from=<same>` that is offline-to-online fine-tuning: the policy,
its normalisers and the critic continue, and the offline data stays in every batch.

Speed (benchmarks/offline_scores.py): the ensemble critic is one batched network, Adam is fused,
Polyak updates are one foreach lerp, batches are tensor indexing, and metrics stay tensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robotune.core.algorithm import Algorithm, AlgorithmConfig, TrainingContext
from robotune.core.dataset import EpisodeDataset
from robotune.core.registry import register
from robotune.core.regularizer import ActionCorrectedPolicy
from robotune.plugins.offline_data import TransitionTensors, offline_transitions, require_single_step
from robotune.training.optimizers import make_adam

ACTORS = ("td3", "sac")


@dataclass
class OfflineActorCriticConfig(AlgorithmConfig):
    steps: int = 1_000_000  # gradient updates
    batch_size: int = 256
    actor: str = "td3"  # "td3": deterministic actor with target smoothing; "sac": stochastic actor with entropy temperature
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4  # sac
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2  # td3: target smoothing noise std, normalised action units
    noise_clip: float = 0.5  # td3
    policy_freq: int = 2  # td3: critic updates per actor update
    init_alpha: float = 1.0  # sac
    target_entropy: float | None = None  # sac; None: −|A|
    q_weight: float = 1.0  # c_q: TD3+BC's and PRDC's α, 1 for ReBRAC, SPOT and SAC-RND
    normalize_q: bool = False  # divide the actor's Q term by E|Q| (detached): TD3+BC's λ = α / E|Q|
    actor_q: str = "first"  # "first" (Q_0, TD3) or "min" (over members: ReBRAC, SAC-RND)
    standardize_obs: bool = True  # z-score observations with the dataset (off when init_from a policy whose normaliser must stay)
    normalize_reward: bool = False  # r *= 1000 / (max − min episode return), as CORL's IQL
    # A generative actor's own training loss on the batch's actions (flow matching, denoising), added
    # to the actor loss times this weight: the behaviour-cloning anchor of Diffusion-QL and FQL.
    policy_loss_weight: float = 0.0
    # Run the actor's and critics' passes in bfloat16 (parameters, optimiser states, losses and
    # regularizer terms stay float32): on CPUs with AVX512-BF16 the matrix products cost about half.
    bf16_autocast: bool = False

    def __post_init__(self) -> None:
        if self.actor not in ACTORS:
            raise ValueError(f"algo.actor must be one of {ACTORS}, got '{self.actor}'")
        if self.actor_q not in ("first", "min"):
            raise ValueError(f"algo.actor_q must be 'first' or 'min', got '{self.actor_q}'")
        if self.policy_freq < 1 or self.batch_size < 1:
            raise ValueError(f"algo.policy_freq and algo.batch_size must be >= 1, got {self.policy_freq} and {self.batch_size}")


@register("algorithm", "offline")
class OfflineActorCritic(Algorithm):
    """TD3 or SAC learning from a fixed dataset, with the configured regularizers; see the module docstring."""

    config: OfflineActorCriticConfig
    needs_dataset = True

    def __init__(self, config: OfflineActorCriticConfig, context: TrainingContext) -> None:
        super().__init__(config, context)
        policy = self.policy
        pc = policy.config
        require_single_step(policy, config.name)
        if config.actor == "sac" and not hasattr(policy, "rsample"):
            raise TypeError(f"algo.actor=sac needs a policy with rsample(obs_norm, generator); policy '{pc.name}' has none (use policy=gaussian_sac)")
        self.obs_dim, self.action_dim = policy.obs_dim, policy.action_dim
        self.critic = context.build_critic(self.obs_dim, self.action_dim)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_policy = copy.deepcopy(policy).requires_grad_(False) if config.actor == "td3" else None
        self.regularizers = context.build_regularizers(self.obs_dim, self.action_dim)
        for regularizer in self.regularizers:
            if hasattr(regularizer, "attach_critic"):
                regularizer.attach_critic(self.critic)
        self.actor_optimizer = make_adam([p for p in policy.parameters() if p.requires_grad], config.actor_lr)
        self.critic_optimizer = make_adam(list(self.critic.parameters()), config.critic_lr)
        self.log_alpha = torch.tensor(np.log(config.init_alpha), dtype=torch.float32, device=context.device, requires_grad=True)
        self.alpha_optimizer = make_adam([self.log_alpha], config.alpha_lr)
        self.target_entropy = config.target_entropy if config.target_entropy is not None else -float(self.action_dim)
        self.target_pairs = self._target_pairs()
        self.sample_generator = torch.Generator().manual_seed(context.seed)  # batch indices, on the CPU
        self.data = self._prepare_data(context.dataset) if context.dataset is not None else None

    def _prepare_data(self, dataset: EpisodeDataset) -> TransitionTensors:
        """Normalise the dataset once, fit the regularizers' models on it, and hold its transitions as tensors.

        Resuming fits again (the fits are seeded) and the checkpoint's weights then replace the fitted ones."""
        cfg = self.config
        transitions, dataset_norm = offline_transitions(self.policy, dataset, cfg.gamma, self.context.device, cfg.standardize_obs, cfg.normalize_reward)
        if self.target_policy is not None:
            self.target_policy.load_state_dict(self.policy.state_dict())  # the normaliser may have changed
        for regularizer in self.regularizers:
            regularizer.fit(dataset_norm)
        return transitions

    def _target_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        targets, sources = list(self.target_critic.parameters()), list(self.critic.parameters())
        if self.target_policy is not None:
            targets += list(self.target_policy.parameters())
            sources += list(self.policy.parameters())
        return targets, sources

    # ------------------------------------------------------------------ the actor

    def deterministic_action(self, policy, obs: torch.Tensor) -> torch.Tensor:
        """A TD3 actor's action: obs (B, obs_dim) -> (B, action_dim): a tanh Gaussian's tanh(μ), or a flow's or a
        diffusion policy's sample, differentiable through its integration steps (noise from the run's generator)."""
        return policy.sample_chunk_norm(obs.unsqueeze(1), True, self.context.generator)[:, 0]

    def stochastic_action(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A SAC actor's reparameterised sample (B, action_dim) and its log-density (B,)."""
        chunk, log_prob = self.policy.rsample(obs.unsqueeze(1), self.context.generator)
        return chunk[:, 0], log_prob

    # ------------------------------------------------------------------ learning

    def step(self) -> dict[str, Any]:
        metrics = self.update(self.data.sample(self.config.batch_size, self.sample_generator))
        return metrics

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on a normalised batch (see the module docstring)."""
        cfg, sac = self.config, self.config.actor == "sac"
        alpha = self.log_alpha.exp().detach()
        metrics: dict[str, torch.Tensor] = {}

        autocast = torch.autocast(batch["obs"].device.type, dtype=torch.bfloat16, enabled=cfg.bf16_autocast)
        with torch.no_grad():
            with autocast:
                if sac:
                    next_action, next_log_prob = self.stochastic_action(batch["next_obs"])
                else:
                    noise = torch.randn(batch["action"].shape, generator=self.context.generator, device=batch["action"].device)
                    smoothing = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
                    next_action = (self.deterministic_action(self.target_policy, batch["next_obs"]) + smoothing).clamp(-1.0, 1.0)
                next_value = self.target_critic.q_value(batch["next_obs"], next_action).min(0).values
            next_action, next_value = next_action.float(), next_value.float()
            if sac:
                next_log_prob = next_log_prob.float()
            if sac:
                next_value = next_value - alpha * next_log_prob
            for regularizer in self.regularizers:
                penalty, reg_metrics = regularizer.critic_term(batch, next_action)
                next_value = next_value - penalty
                metrics.update(reg_metrics)
            target = batch["reward"] + batch["bootstrap"] * next_value
        with autocast:
            q = self.critic.q_value(batch["obs"], batch["action"]).float()  # (E, B)
        critic_loss = (q - target).square().mean(1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        batch = {**batch, "q_target": target}

        if sac or self.grad_steps % cfg.policy_freq == 0:
            self.critic.requires_grad_(False)  # the actor needs dQ/da, not dQ/dθ_Q
            with autocast:
                if sac:
                    policy_action, log_prob = self.stochastic_action(batch["obs"])
                else:
                    policy_action = self.deterministic_action(self.policy, batch["obs"])
                q_policy_members = self.critic.q_value(batch["obs"], policy_action).float()
            policy_action = policy_action.float()
            if sac:
                log_prob = log_prob.float()
            q_policy = q_policy_members[0] if cfg.actor_q == "first" else q_policy_members.min(0).values
            q_scale = cfg.q_weight / q_policy.abs().mean().detach() if cfg.normalize_q else cfg.q_weight
            actor_loss = -q_scale * q_policy.mean()
            if sac:
                actor_loss = actor_loss + (alpha * log_prob).mean()
            if cfg.policy_loss_weight:
                anchor, _ = self.policy.compute_loss(batch["obs"].unsqueeze(1), batch["action"].unsqueeze(1), self.context.generator)
                actor_loss = actor_loss + cfg.policy_loss_weight * anchor
                metrics["policy_loss"] = anchor.detach()
            for regularizer in self.regularizers:
                term, reg_metrics = regularizer.actor_term(batch, policy_action, q_policy)
                actor_loss = actor_loss + term
                metrics.update(reg_metrics)
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            self.critic.requires_grad_(True)
            if sac:
                alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
                self.alpha_optimizer.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_optimizer.step()
                metrics.update(alpha=alpha, entropy=-log_prob.detach().mean())
            with torch.no_grad():
                torch._foreach_lerp_(self.target_pairs[0], self.target_pairs[1], cfg.tau)
            metrics["actor_loss"] = actor_loss.detach()
        for regularizer in self.regularizers:
            metrics.update(regularizer.update(batch))
        self.grad_steps += 1
        metrics.update(critic_loss=critic_loss.detach(), q_mean=q.detach().mean())
        return metrics

    # ------------------------------------------------------------------ state

    def _optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        return self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "target_policy": self.target_policy.state_dict() if self.target_policy is not None else None,
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "optimizers": [o.state_dict() for o in self._optimizers()],
            "regularizers": [{"weights": r.state_dict(), "extra": r.extra_state()} for r in self.regularizers],
            "sample_generator": self.sample_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.target_policy is not None:
            self.target_policy.load_state_dict(state["target_policy"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for optimizer, optimizer_state in zip(self._optimizers(), state["optimizers"]):
            optimizer.load_state_dict(optimizer_state)
        for regularizer, saved in zip(self.regularizers, state["regularizers"]):
            regularizer.load_state_dict(saved["weights"])
            regularizer.load_extra_state(saved["extra"])
        self.sample_generator.set_state(state["sample_generator"])

    def inference_policy(self):
        correctors = self.action_correctors()
        return ActionCorrectedPolicy(self.policy.eval(), correctors) if correctors else self.policy.eval()

    def action_correctors(self) -> list:
        return [r for r in self.regularizers if r.corrects_actions]


@dataclass
class ActorCriticConfig(OfflineActorCriticConfig):
    steps: int = 100_000  # loop steps: env_steps_per_step environment steps per environment, then one update
    num_envs: int = 1
    vector: str = "sync"  # "sync" or "async"
    env_steps_per_step: int = 1
    buffer_size: int = 1_000_000
    learning_starts: int = 1000  # environment steps before the first update (uniform random actions unless init_from)
    exploration_noise: float = 0.1  # td3: Gaussian action noise std while acting, normalised units
    offline_data: str | None = None  # a dataset (any format `data.path` takes) mixed into every batch
    offline_fraction: float = 0.5  # share of each batch drawn from offline_data
    critic_from: str | None = None  # a checkpoint or run dir of algo=offline/actor_critic whose critics continue here
    standardize_obs: bool = False  # online: keep the normaliser the policy came with

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.offline_fraction < 1.0:
            raise ValueError(f"algo.offline_fraction must be in [0, 1), got {self.offline_fraction}")


@register("algorithm", "actor_critic")
class ActorCritic(OfflineActorCritic):
    """The same learner acting in environments; with init_from, critic_from and offline_data, offline-to-online."""

    config: ActorCriticConfig
    needs_dataset = False

    def __init__(self, config: ActorCriticConfig, context: TrainingContext) -> None:
        from robotune.data import load_dataset
        from robotune.rollout.chunk_rollout import ChunkRollout
        from robotune.training.replay import ReplayBuffer

        if config.offline_data:
            context.dataset = load_dataset(config.offline_data)
        super().__init__(config, context)
        if config.critic_from:
            self._load_critic(config.critic_from)
        self.buffer = ReplayBuffer(context.work_dir / "replay", config.buffer_size, self.obs_dim, self.action_dim)
        self.envs = context.make_envs(config.num_envs, config.vector)
        self.rollout = ChunkRollout(self.envs, 1, 1, config.gamma, seed=context.seed)
        self.random_until = 0 if config.critic_from else config.learning_starts

    def _load_critic(self, path: str) -> None:
        from robotune.core.checkpoint import load_training_state, resolve_checkpoint

        state = load_training_state(resolve_checkpoint(path))["algorithm"]
        if "critic" not in state:
            raise ValueError(f"algo.critic_from={path} holds no critic; its training state has {sorted(state)}")
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        if self.target_policy is not None and state.get("target_policy") is not None:
            self.target_policy.load_state_dict(state["target_policy"])

    @torch.no_grad()
    def _decide(self, obs: np.ndarray) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        device, generator = self.context.device, self.context.generator
        obs_norm = self.policy.obs_normalizer.normalize(torch.as_tensor(obs, device=device).view(len(obs), -1))
        if self.env_steps < self.random_until:
            action = torch.rand((len(obs), self.action_dim), generator=generator, device=device) * 2 - 1
        elif self.config.actor == "sac":
            action = self.stochastic_action(obs_norm)[0]
        else:
            noise = torch.randn((len(obs), self.action_dim), generator=generator, device=device) * self.config.exploration_noise
            action = (self.deterministic_action(self.policy, obs_norm) + noise).clamp(-1.0, 1.0)
        raw = self.policy.action_normalizer.unnormalize(action)
        return raw.unsqueeze(1).cpu().numpy(), {"action": raw}

    def step(self) -> dict[str, Any]:
        cfg = self.config
        transitions, episodes = self.rollout.collect(cfg.env_steps_per_step, self._decide)
        self.env_steps += cfg.env_steps_per_step * cfg.num_envs
        self.buffer.add_decisions(transitions)
        metrics: dict[str, Any] = episodes.summary()
        if self.env_steps >= cfg.learning_starts:
            metrics.update(self.update(self._mixed_batch()))
        return metrics

    def _mixed_batch(self) -> dict[str, torch.Tensor]:
        """Online replay, normalised, joined by `offline_fraction` of offline transitions when there is offline data.
        Online transitions have no dataset next action, so only the fields both share are kept."""
        cfg, policy = self.config, self.policy
        offline_size = int(round(cfg.batch_size * cfg.offline_fraction)) if self.data is not None else 0
        raw = self.buffer.sample(cfg.batch_size - offline_size, self.sample_generator, self.context.device)
        online = {
            "obs": policy.obs_normalizer.normalize(raw["obs"]),
            "action": policy.action_normalizer.normalize(raw["action"]),
            "reward": raw["reward"],
            "next_obs": policy.obs_normalizer.normalize(raw["next_obs"]),
            "bootstrap": raw["discount"] * (1 - raw["terminated"]),
        }
        if not offline_size:
            return online
        offline = self.data.sample(offline_size, self.sample_generator)
        return {name: torch.cat([offline[name], value]) for name, value in online.items()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])
        self.rollout.restart(seed=self.context.seed + self.env_steps)  # new episodes: env state is not checkpointed

    def close(self) -> None:
        self.envs.close()
