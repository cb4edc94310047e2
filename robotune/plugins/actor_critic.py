"""The off-policy actor-critic engine: SAC and TD3, online (`algo=sac`, `algo=actor_critic`) and offline (`algo=offline`).

One learner serves online RL from scratch, offline RL and offline-to-online fine-tuning. Offline
methods differ from it in a term or two (offline_rl.md, section 1), so each method is a regularizer
(`regularizer=[td3_bc]`, or several). One update, on a batch in the engine's units:

    y    = r + d [min_e Q̄_e(s', ã') − α log π(ã'|s') − Σ_k critic_term_k(s', ã')]     d = γ^k (1 − terminated)
    L_Q  = Σ_e E[(Q_e(s, a) − y)²]                                                      one batched ensemble
    L_π  = −c_q · E[Q(s, ã)] / n + α E[log π(ã|s)] + Σ_k actor_term_k(s, ã, Q)
    L_α  = −E[log α (log π(ã|s) + H_target)],   H_target = −dim(a)
    Q̄ (and π̄) ← (1 − τ) Q̄ + τ Q

- `actor=sac` (Haarnoja et al. 2018, automatic temperature): ã' ~ π(·|s') and ã ~ π(·|s),
  reparameterised; the actor, α and the target critic update every step. Adam is invariant to the
  loss scale, so SB3's ½ on L_Q is left out (CORL's and CleanRL's form).
- `actor=td3` (Fujimoto et al. 2018; CORL's TD3+BC) has no α terms: ã' = clip(π̄(s') + clip(ε, ±c), ±1),
  ε ~ N(0, σ²) (target policy smoothing), ã = π(s), and the actor and both targets update every
  `policy_freq` critic updates. A generative actor (flow matching, diffusion) works as a TD3 actor:
  π(s) is its sample, and the gradient of Q flows back through its integration steps;
  `policy_loss_weight` adds its own training loss on the data as the behaviour-cloning anchor
  (Diffusion-QL, FQL).

Q in L_π is member 0 (`actor_q=first`, TD3) or the minimum over members (`actor_q=min`: SAC,
ReBRAC, SAC-RND); n = E|Q(s, ã)| (detached) if `normalize_q` (TD3+BC's λ = α / E|Q|), else 1.

Units: s is the observation window, normalised and flattened (B, To·Do); a is the chunk's executed
actions, normalised to [-1, 1] and flattened (B, k·Da), with d = γ^k for a k-step chunk. Offline
data are single steps (To = k = 1) with observations z-scored (`robotune/plugins/offline_data.py`),
so TD3's noise (σ 0.2, c 0.5) is in units of half the action range, as CORL's `max_action` = 1.
Regularizers see dict batches in those units (obs, action, reward, next_obs, bootstrap = d, and for
dataset transitions next_action) plus `q_target`, the critic's target y for the batch; one that
needs the critic itself (A2PR's advantage) defines `attach_critic(critic)`.

Offline (`algo=offline`), one `step()` is one update on a batch of the dataset. Online
(`algo=actor_critic`; `algo=sac` is it with SAC's defaults), one `step()` takes `env_steps_per_step`
environment steps in each of `num_envs` environments as chunk decisions
(`robotune/rollout/chunk_rollout.py`): uniform random actions for the first `learning_starts`,
then the actor's (plus Gaussian noise for TD3). It stores them in the memory-mapped replay buffer
(`robotune/training/replay.py`) and makes `updates_per_step` updates. With `offline_fraction` > 0
every batch mixes in that share of the run's dataset (`data.path`); with `init_from=<offline run>`
and `critic_from=<same>` that is offline-to-online fine-tuning: the policy, its normalisers and
the critic continue, and the offline data stay in every batch.

Speed (benchmarks/rl_engines.py, benchmarks/offline_scores.py): the ensemble critic is one batched
network, Adam is fused, the actor and α share one backward pass and one Adam step, Polyak updates
are one foreach lerp, critic gradients are off for the actor's backward pass, a chunk that is all
executed is not sliced, `actor_q=first` runs member 0 alone, batches are tensor indexing, metrics
stay tensors until the loop logs them, and `bf16_autocast` runs the networks' passes in bfloat16.
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
from robotune.rollout.chunk_rollout import ChunkRollout
from robotune.training.optimizers import make_adam
from robotune.training.replay import ReplayBuffer

ACTORS = ("td3", "sac")


def executed_actions(policy, chunk: torch.Tensor) -> torch.Tensor:
    """A chunk (B, H, Da) -> its first act_steps actions, flattened (B, act_steps·Da). A chunk that is all executed
    is only flattened: a full slice would still cost a slice and its backward in every update."""
    executed = policy.config.act_steps
    return (chunk if executed == chunk.shape[1] else chunk[:, :executed]).flatten(1)


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
    autotune_alpha: bool = True  # sac: tune α toward the target entropy; false keeps init_alpha
    target_entropy: float | None = None  # sac; None: −dim(a)
    q_weight: float = 1.0  # c_q: TD3+BC's and PRDC's α, 1 for ReBRAC, SPOT and SAC-RND
    normalize_q: bool = False  # divide the actor's Q term by E|Q| (detached): TD3+BC's λ = α / E|Q|
    actor_q: str = "first"  # "first" (Q_0, TD3) or "min" (over members: SAC, ReBRAC, SAC-RND)
    standardize_obs: bool = True  # z-score observations with the dataset (off when init_from a policy whose normaliser must stay)
    normalize_reward: bool = False  # r *= 1000 / (max − min episode return), as CORL's IQL
    # A generative actor's own training loss on the batch's actions (flow matching, denoising), added
    # to the actor loss times this weight: the behaviour-cloning anchor of Diffusion-QL and FQL.
    policy_loss_weight: float = 0.0
    # Run the actor's and critics' passes in bfloat16 (parameters, optimiser states, losses and
    # regularizer terms stay float32): on CPUs with AVX512-BF16 the matrix products cost about half;
    # benchmarks/rl_engines.py measures the effect on speed and return.
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

    @classmethod
    def needs_dataset(cls, config: OfflineActorCriticConfig) -> bool:
        return True

    def __init__(self, config: OfflineActorCriticConfig, context: TrainingContext) -> None:
        super().__init__(config, context)
        policy = self.policy
        self.check_policy()
        if context.dataset is not None:
            require_single_step(policy, config.name)
        self.obs_size = policy.config.obs_horizon * policy.obs_dim
        self.action_size = self.actor_action_size()
        self.critic = context.build_critic(self.obs_size, self.action_size)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_policy = copy.deepcopy(policy).requires_grad_(False) if config.actor == "td3" else None
        self.regularizers = context.build_regularizers(self.obs_size, self.action_size)
        for regularizer in self.regularizers:
            if hasattr(regularizer, "attach_critic"):
                regularizer.attach_critic(self.critic)
        self.critic_optimizer = make_adam(list(self.critic.parameters()), config.critic_lr)
        self.log_alpha = torch.tensor(np.log(config.init_alpha), dtype=torch.float32, device=context.device, requires_grad=True)
        # The actor and α step together: their losses share no parameters, so one backward and one fused Adam
        # step over both groups equal two of each.
        self.actor_optimizer = make_adam([
            {"params": [p for p in policy.parameters() if p.requires_grad], "lr": config.actor_lr},  # frozen bases stay out
            {"params": [self.log_alpha], "lr": config.alpha_lr},
        ], config.actor_lr)
        self.target_entropy = config.target_entropy if config.target_entropy is not None else -float(self.action_size)
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

    # ------------------------------------------------------------------ the actor's action
    # The critic's action is the chunk's executed actions, normalised and flattened; DSRL (dsrl.py)
    # overrides `check_policy`, `actor_action_size` and `stochastic_action` (and the online engine's
    # `to_environment` and `critic_action`) to act in a frozen generative policy's noise space instead.

    def check_policy(self) -> None:
        if self.config.actor == "sac" and not hasattr(self.policy, "rsample"):
            raise TypeError(
                f"algo.actor=sac needs a policy with rsample(obs_norm, generator) -> (chunk_norm, log_prob); policy "
                f"'{self.policy.config.name}' has none (use policy=gaussian_sac, or policy=gaussian policy.tanh_squash=true "
                f"policy.state_dependent_std=true)"
            )

    def actor_action_size(self) -> int:
        """Size of the actor's (and the critic's) action: the executed actions, flattened."""
        return self.policy.config.act_steps * self.policy.action_dim

    def deterministic_action(self, policy, obs: torch.Tensor) -> torch.Tensor:
        """A TD3 actor's action: obs windows (B, To, Do) -> (B, action_size): a tanh Gaussian's tanh(μ), or a flow's or a
        diffusion policy's sample, differentiable through its integration steps (noise from the run's generator)."""
        return executed_actions(policy, policy.sample_chunk_norm(obs, True, self.context.generator))

    def stochastic_action(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A SAC actor's reparameterised action: obs windows (B, To, Do) -> (B, action_size) and its log-density (B,)."""
        chunk, log_prob = self.policy.rsample(obs, self.context.generator)
        return executed_actions(self.policy, chunk), log_prob

    # ------------------------------------------------------------------ learning

    def step(self) -> dict[str, Any]:
        return self.update(self.data.sample(self.config.batch_size, self.sample_generator))

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on a batch in the engine's units (see the module docstring)."""
        cfg, sac = self.config, self.config.actor == "sac"
        windows = (self.policy.config.obs_horizon, self.policy.obs_dim)
        obs, next_obs = batch["obs"].unflatten(1, windows), batch["next_obs"].unflatten(1, windows)  # (B, To, Do) for the actor
        alpha = self.log_alpha.exp().detach()
        metrics: dict[str, torch.Tensor] = {}

        autocast = torch.autocast(batch["obs"].device.type, dtype=torch.bfloat16, enabled=cfg.bf16_autocast)
        with torch.no_grad():
            with autocast:
                if sac:
                    next_action, next_log_prob = self.stochastic_action(next_obs)
                else:
                    noise = torch.randn(batch["action"].shape, generator=self.context.generator, device=batch["action"].device)
                    smoothing = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
                    next_action = (self.deterministic_action(self.target_policy, next_obs) + smoothing).clamp(-1.0, 1.0)
                next_value = self.target_critic.q_value(batch["next_obs"], next_action).min(0).values
            next_action, next_value = next_action.float(), next_value.float()
            if sac:
                next_value = next_value - alpha * next_log_prob.float()
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
                    policy_action, log_prob = self.stochastic_action(obs)
                else:
                    policy_action = self.deterministic_action(self.policy, obs)
                if cfg.actor_q == "first":
                    q_policy = self.critic.first_q_value(batch["obs"], policy_action).float()
                else:
                    q_policy = self.critic.q_value(batch["obs"], policy_action).float().min(0).values
            policy_action = policy_action.float()
            q_scale = cfg.q_weight / q_policy.abs().mean().detach() if cfg.normalize_q else cfg.q_weight
            actor_loss = -q_scale * q_policy.mean()
            if sac:
                log_prob = log_prob.float()
                actor_loss = actor_loss + (alpha * log_prob).mean()
                metrics.update(alpha=alpha, entropy=-log_prob.detach().mean())
            if cfg.policy_loss_weight:
                anchor, _ = self.policy.compute_loss(obs, batch["action"].unflatten(1, (-1, self.policy.action_dim)), self.context.generator)
                actor_loss = actor_loss + cfg.policy_loss_weight * anchor
                metrics["policy_loss"] = anchor.detach()
            for regularizer in self.regularizers:
                term, reg_metrics = regularizer.actor_term(batch, policy_action, q_policy)
                actor_loss = actor_loss + term
                metrics.update(reg_metrics)
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean() if sac and cfg.autotune_alpha else 0.0
            self.actor_optimizer.zero_grad(set_to_none=True)
            (actor_loss + alpha_loss).backward()
            self.actor_optimizer.step()
            self.critic.requires_grad_(True)
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
        return self.actor_optimizer, self.critic_optimizer

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
    steps: int = 100_000  # loop steps: env_steps_per_step environment steps per environment, then updates_per_step updates
    num_envs: int = 1
    vector: str = "sync"  # "sync" or "async"
    env_steps_per_step: int = 1  # a multiple of policy.act_steps, so chunks are not cut between steps
    updates_per_step: int = 1
    buffer_size: int = 1_000_000
    learning_starts: int = 1000  # environment steps before the first update (uniform random actions unless critic_from)
    exploration_noise: float = 0.1  # td3: Gaussian action noise std while acting, normalised units
    # Share of each batch drawn from the run's dataset (`data.path`, or the task's recorded
    # demonstrations); 0 learns from the replay buffer alone and loads no dataset.
    offline_fraction: float = 0.0
    critic_from: str | None = None  # a checkpoint or run dir of algo=offline/actor_critic whose critics continue here
    standardize_obs: bool = False  # online: keep the normaliser the policy came with

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.offline_fraction < 1.0:
            raise ValueError(f"algo.offline_fraction must be in [0, 1), got {self.offline_fraction}")


@register("algorithm", "actor_critic")
class ActorCritic(OfflineActorCritic):
    """The same learner acting in environments; with init_from, critic_from and offline_fraction, offline-to-online."""

    config: ActorCriticConfig

    @classmethod
    def needs_dataset(cls, config: ActorCriticConfig) -> bool:
        return config.offline_fraction > 0

    def __init__(self, config: ActorCriticConfig, context: TrainingContext) -> None:
        if config.offline_fraction > 0 and context.dataset is None:
            raise ValueError(f"algo.offline_fraction={config.offline_fraction} mixes offline data into every batch, but the run has no dataset")
        super().__init__(config, context)
        if config.critic_from:
            self._load_critic(config.critic_from)
        pc = self.policy.config
        self.buffer = ReplayBuffer(context.work_dir / "replay", config.buffer_size, self.obs_size, self.action_size)
        self.envs = context.make_envs(config.num_envs, config.vector)
        self.rollout = ChunkRollout(self.envs, pc.obs_horizon, pc.act_steps, config.gamma, seed=context.seed)
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

    # ------------------------------------------------------------------ acting

    def to_environment(self, obs_norm: torch.Tensor, action: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor]:
        """An actor action (B, action_size), or None for uniform random exploration -> raw executed
        actions (B, act_steps, Da) for the environments, and what the replay buffer stores (raw, flat)."""
        k, da = self.policy.config.act_steps, self.policy.action_dim
        if action is None:
            action = torch.rand((len(obs_norm), k * da), generator=self.context.generator, device=self.context.device) * 2 - 1
        raw = self.policy.action_normalizer.unnormalize(action.view(-1, k, da).clamp(-1.0, 1.0))
        return raw.cpu().numpy(), raw.flatten(1)

    def critic_action(self, stored: torch.Tensor) -> torch.Tensor:
        """A replay buffer's action (B, action_size) -> the critic's units (normalised)."""
        k, da = self.policy.config.act_steps, self.policy.action_dim
        return self.policy.action_normalizer.normalize(stored.view(-1, k, da)).flatten(1)

    @torch.no_grad()
    def _decide(self, obs: np.ndarray) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        cfg, device, generator = self.config, self.context.device, self.context.generator
        obs_norm = self.policy.normalize_obs(obs)
        if self.env_steps < self.random_until:
            action = None
        elif cfg.actor == "sac":
            action = self.stochastic_action(obs_norm)[0]
        else:
            noise = torch.randn((len(obs), self.action_size), generator=generator, device=device) * cfg.exploration_noise
            action = (self.deterministic_action(self.policy, obs_norm) + noise).clamp(-1.0, 1.0)
        actions, stored = self.to_environment(obs_norm, action)
        return actions, {"action": stored}

    # ------------------------------------------------------------------ learning

    def step(self) -> dict[str, Any]:
        cfg = self.config
        transitions, episodes = self.rollout.collect(cfg.env_steps_per_step, self._decide)
        self.env_steps += cfg.env_steps_per_step * cfg.num_envs
        self.buffer.add_decisions(transitions)
        metrics: dict[str, Any] = episodes.summary()
        if self.env_steps >= cfg.learning_starts:
            for _ in range(cfg.updates_per_step):
                metrics.update(self.update(self.replay_batch()))
        return metrics

    def replay_batch(self) -> dict[str, torch.Tensor]:
        """A batch of online replay in the engine's units, joined by `offline_fraction` of offline transitions.
        Online transitions have no dataset next action, so only the fields both share are kept."""
        cfg, policy = self.config, self.policy
        offline_size = int(round(cfg.batch_size * cfg.offline_fraction))
        raw = self.buffer.sample(cfg.batch_size - offline_size, self.sample_generator, self.context.device)
        online = {
            "obs": policy.normalize_obs(raw["obs"]).flatten(1),
            "action": self.critic_action(raw["action"]),
            "reward": raw["reward"],
            "next_obs": policy.normalize_obs(raw["next_obs"]).flatten(1),
            "bootstrap": raw["discount"] * (1 - raw["terminated"]),
        }
        if not offline_size:
            return online
        offline = self.data.sample(offline_size, self.sample_generator)
        return {name: torch.cat([offline[name], value]) for name, value in online.items()}

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])
        self.rollout.restart(seed=self.context.seed + self.env_steps)  # new episodes: env state is not checkpointed

    def close(self) -> None:
        self.envs.close()


@dataclass
class SACConfig(ActorCriticConfig):
    """`algo=sac`: the online engine with SAC's actor and the settings of SB3's and CleanRL's SAC."""

    actor: str = "sac"
    actor_q: str = "min"
    learning_starts: int = 100  # environment steps of uniform random actions before the first update


@register("algorithm", "sac")
class SAC(ActorCritic):
    """Soft actor-critic (Haarnoja et al. 2018) from scratch: `algo=actor_critic algo.actor=sac` with SAC's defaults."""

    config: SACConfig
