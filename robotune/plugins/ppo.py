"""PPO (Schulman et al. 2017) on chunk decisions: RL from scratch, or fine-tuning a trained policy.

One `step()` is one iteration:
1. Roll out `rollout_steps` environment steps in each of `num_envs` environments. Each decision
   samples a chunk with `policy.sample_with_trace` and runs its first `act_steps` actions; the
   decision's reward is the discounted sum inside the chunk (`robotune/rollout/chunk_rollout.py`).
2. Advantages by GAE with truncation bootstrapping (`robotune/rollout/advantages.py`), from the
   critic's value V(o) of the normalised, flattened observation window.
3. `epochs` passes over the policy samples (the decisions; DPPO's (decision, denoising step)
   pairs, through `policy_samples`) in minibatches of `batch_size`, minimising

       L = −E[min(ρ A, clip(ρ, 1 − ε, 1 + ε) A)] + c_v E[(V(o) − R)²],   ρ = exp(log π_θ(a|o) − log π_old(a|o))

   with one Adam over policy and critic (a learning rate each), gradient-norm clipping, advantages normalised per
   minibatch, and an optional early stop when the approximate KL exceeds `target_kl`.

Fine-tuning (`init_from=<BC checkpoint>`) starts from a trained policy and an untrained critic:
`critic_warmup_iterations` first fits the critic alone, so that early advantages are not noise.
`reward_scaling` divides rewards by a running std of the discounted return (DPPO and ResiP do; a
sparse success reward otherwise gives value targets whose scale changes as the policy improves).
Any policy implementing `SupportsLikelihood` can be trained; the Gaussian is the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from robotune.core.algorithm import Algorithm, AlgorithmConfig, TrainingContext
from robotune.core.policy import SupportsLikelihood
from robotune.core.registry import register
from robotune.rollout.advantages import generalized_advantages, grid_view
from robotune.rollout.chunk_rollout import Decider, DecisionBatch
from robotune.training.optimizers import clipped_adam_step, make_adam


@dataclass
class PPOConfig(AlgorithmConfig):
    steps: int = 100  # iterations (rollout + epochs)
    batch_size: int = 64  # decisions per minibatch
    num_envs: int = 8
    vector: str = "sync"  # "sync" or "async" (one subprocess per environment)
    rollout_steps: int = 256  # environment steps per environment per iteration
    epochs: int = 10
    lr: float = 3e-4  # policy learning rate; fine-tuning a trained policy wants ~10x-30x less
    critic_lr: float = 3e-4
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    target_kl: float = 0.0  # stop an iteration's epochs once approx. KL exceeds this; 0 never stops
    critic_warmup_iterations: int = 0  # iterations that train the critic only (fine-tuning)
    reward_scaling: bool = False  # divide rewards by the running std of the discounted return (RunningReturnScaler)
    reward_clip: float = 10.0  # |scaled reward| ceiling when reward_scaling is on
    # torch.compile the update: the minibatch loss (forward and backward as two inductor graphs) and the
    # gradient clip + Adam step + gradient release (one graph, `clipped_adam_step`). At 64x64 networks on
    # one CPU thread the update is per-operation overhead, and this makes ~2x the eager updates per second
    # (2.1-3.1x SB3's over ten runs, benchmarks/rl_engines.py --updates-only); it costs ~3-4 s of compilation at the first update with
    # inductor's on-disk cache warm and ~35 s cold, so short runs and tests leave it off.
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "num_envs", "rollout_steps", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"algo.{name} must be >= 1, got {getattr(self, name)}")


class RunningReturnScaler:
    """Running std of each environment's discounted return, G ← d G + R per decision (PPG's reward scaling).

    Dividing rewards by it keeps value targets near unit scale without shifting them (a shift would
    change which actions look good)."""

    def __init__(self, num_envs: int, clip: float) -> None:
        self.clip = clip
        self.returns = np.zeros(num_envs)
        self.count, self.mean, self.var = 0, 0.0, 1.0

    def scale(self, batch: DecisionBatch) -> np.ndarray:
        """Scaled rewards (D,); updates the running statistics with this batch's returns."""
        seen = []
        for row in batch.grid:  # time order, all environments at once
            valid = row >= 0
            index = row[valid]
            self.returns[valid] = self.returns[valid] + batch.reward[index]
            seen.append(self.returns[valid].copy())
            self.returns[valid] *= np.where(batch.episode_end[index], 0.0, batch.discount[index])
        seen = np.concatenate(seen)
        total = self.count + len(seen)  # Chan et al.'s parallel update of mean and variance
        delta = seen.mean() - self.mean
        self.var = (self.var * self.count + seen.var() * len(seen) + delta**2 * self.count * len(seen) / total) / total
        self.mean += delta * len(seen) / total
        self.count = total
        return np.clip(batch.reward / np.sqrt(self.var + 1e-8), -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"returns": torch.from_numpy(self.returns.copy()), "count": self.count, "mean": self.mean, "var": self.var}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].numpy().astype(np.float64)
        self.count, self.mean, self.var = int(state["count"]), float(state["mean"]), float(state["var"])


@dataclass
class PolicySamples:
    """What PPO's update needs from a rollout: `count` samples, each belonging to a decision.

    `log_ratio(index)` is log π_θ − log π_old of samples `index` (a (M,) int tensor), with gradients;
    `clip_range`, `advantage_weight` and `extra_loss` let a variant (DPPO) vary ε and weight the
    decision's advantage per sample, and add a loss term with its metrics."""

    count: int
    decision: Callable[[torch.Tensor], torch.Tensor]
    log_ratio: Callable[[torch.Tensor], torch.Tensor]
    clip_range: Callable[[torch.Tensor], float | torch.Tensor]
    advantage_weight: Callable[[torch.Tensor], float | torch.Tensor] = lambda index: 1.0
    extra_loss: Callable[[torch.Tensor], tuple[torch.Tensor | float, dict[str, torch.Tensor]]] = lambda index: (0.0, {})


@torch.no_grad()
def sample_decisions(modules: dict[str, torch.nn.Module], obs: np.ndarray, generator: torch.Generator) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """PPO's decision rule: raw windows (M, To, Do) -> raw executed actions (M, act_steps, Da) and, per decision,
    the log-probability, the critic's value and the sampling trace. Module-level so Ray workers run it too."""
    policy, critic = modules["policy"], modules["critic"]
    obs_norm = policy.normalize_obs(obs)
    chunk_norm, trace, log_prob = policy.sample_with_trace(obs_norm, generator)
    executed = chunk_norm[:, : policy.config.act_steps].clamp(-1.0, 1.0)
    actions = policy.action_normalizer.unnormalize(executed).cpu().numpy()
    tensors = {"log_prob": log_prob, "value": critic.value(obs_norm.flatten(1)).mean(0), **{f"trace.{k}": v for k, v in trace.items()}}
    return actions, tensors


@register("algorithm", "ppo")
class PPO(Algorithm):
    config_class = PPOConfig
    config: PPOConfig

    def __init__(self, config: PPOConfig, context: TrainingContext) -> None:
        super().__init__(config, context)
        policy = self.policy
        if not isinstance(policy, SupportsLikelihood):
            raise TypeError(
                f"algo=ppo needs a policy with a likelihood (sample_with_trace and log_prob, see "
                f"robotune.core.policy.SupportsLikelihood); policy '{policy.config.name}' has none"
            )
        pc = policy.config
        self.critic = context.build_critic(pc.obs_horizon * policy.obs_dim, 0)
        self.optimizer = make_adam(
            [
                {"params": [p for p in policy.parameters() if p.requires_grad], "lr": config.lr},  # frozen bases stay out
                {"params": list(self.critic.parameters()), "lr": config.critic_lr},
            ],
            lr=config.lr,
            eps=config.adam_eps,
        )
        self.parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.rollout = context.make_chunk_rollout(config.num_envs, config.vector, pc.obs_horizon, pc.act_steps, config.gamma)
        self.decide = Decider(sample_decisions, {"policy": policy, "critic": self.critic}, context.generator)
        self.reward_scaler = RunningReturnScaler(config.num_envs, config.reward_clip) if config.reward_scaling else None
        self.iteration = 0
        self.minibatch_loss = torch.compile(self._minibatch_loss) if config.compile else self._minibatch_loss
        self.apply_gradients = torch.compile(self._apply_gradients) if config.compile else self._apply_gradients

    # ------------------------------------------------------------------ learning

    @torch.no_grad()
    def _advantages(self, batch: DecisionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.context.device
        value = batch.payload["value"]
        next_value = self.critic.value(self.policy.normalize_obs(batch.next_obs).flatten(1)).mean(0)
        reward = self.reward_scaler.scale(batch) if self.reward_scaler is not None else batch.reward
        grid = torch.as_tensor(batch.grid, device=device)
        on_grid = {
            name: grid_view(torch.as_tensor(array, device=device), grid, pad)
            for name, array, pad in (
                ("reward", reward, 0.0),
                ("discount", batch.discount, 0.0),
                ("terminated", batch.terminated, False),
                ("episode_end", batch.episode_end, True),
            )
        }
        advantages_grid, _ = generalized_advantages(
            value=grid_view(value, grid), next_value=grid_view(next_value, grid), lam=self.config.gae_lambda, **on_grid
        )
        valid = grid >= 0
        advantages = torch.empty_like(value)
        advantages[grid[valid]] = advantages_grid[valid]
        return advantages, advantages + value

    def step(self) -> dict[str, float]:
        self.policy.eval()  # sampling and scoring must use the same function (no dropout/BN modes)
        batch, episodes = self.rollout.collect(self.config.rollout_steps, self.decide)
        self.env_steps += self.config.rollout_steps * self.config.num_envs
        metrics = self.learn(batch)
        self.iteration += 1
        return {**metrics, "decisions": float(len(batch)), **episodes.summary()}

    def policy_samples(self, batch: DecisionBatch, obs_norm: torch.Tensor) -> PolicySamples:
        """PPO's samples are the decisions; DPPO overrides this with (decision, denoising step) pairs."""
        trace = {k.removeprefix("trace."): v for k, v in batch.payload.items() if k.startswith("trace.")}
        old_log_prob = batch.payload["log_prob"]

        def log_ratio(index: torch.Tensor) -> torch.Tensor:
            return self.policy.log_prob(obs_norm[index], {k: v[index] for k, v in trace.items()}) - old_log_prob[index]

        return PolicySamples(len(batch), lambda index: index, log_ratio, clip_range=lambda index: self.config.clip_range)

    def learn(self, batch: DecisionBatch) -> dict[str, float]:
        """GAE, then `epochs` passes of clipped-surrogate and value updates over the policy samples."""
        cfg, device = self.config, self.context.device
        advantages, returns = self._advantages(batch)
        obs_norm = self.policy.normalize_obs(batch.obs)
        samples = self.policy_samples(batch, obs_norm)
        train_policy = self.iteration >= cfg.critic_warmup_iterations

        totals: dict[str, torch.Tensor] = {}
        updates = 0
        self.optimizer.zero_grad(set_to_none=True)  # each update's gradients are released after its step
        for _ in range(cfg.epochs):
            order = torch.randperm(samples.count, generator=self.context.generator, device=device)
            epoch_kl = torch.zeros((), device=device)
            for start in range(0, samples.count, cfg.batch_size):
                loss, terms = self.minibatch_loss(order[start : start + cfg.batch_size], samples, obs_norm, advantages, returns, train_policy)
                loss.backward()
                self.apply_gradients()
                for name, value in terms.items():
                    totals[name] = totals.get(name, 0.0) + value
                if train_policy and cfg.target_kl:
                    epoch_kl = epoch_kl + terms["approx_kl"]
                updates += 1
            batches = -(-samples.count // cfg.batch_size)
            if train_policy and cfg.target_kl and (epoch_kl / batches).item() > cfg.target_kl:
                break
        self.grad_steps += updates
        return {name: float(total) / updates for name, total in totals.items()}

    def _apply_gradients(self) -> None:
        """Gradient-norm clipping and the Adam step over policy and critic; the gradients are set to None after."""
        clipped_adam_step(self.optimizer, self.parameters, self.config.max_grad_norm)

    def _minibatch_loss(
        self, index: torch.Tensor, samples: PolicySamples, obs_norm: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor, train_policy: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss L of the policy samples `index` (M,), and its terms as detached tensors."""
        cfg = self.config
        decision = samples.decision(index)
        value_loss = (self.critic.value(obs_norm[decision].flatten(1)) - returns[decision]).square().mean()
        loss = cfg.value_coef * value_loss
        terms = {"value_loss": value_loss.detach()}
        if train_policy:
            log_ratio = samples.log_ratio(index)
            ratio = log_ratio.exp()
            adv = advantages[decision]
            if cfg.normalize_advantages and len(index) > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            adv = adv * samples.advantage_weight(index)
            clip = samples.clip_range(index)
            policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
            extra_loss, extra_terms = samples.extra_loss(index)
            loss = loss + policy_loss + extra_loss
            with torch.no_grad():
                approx_kl = ((ratio - 1) - log_ratio).mean()  # Schulman's k3 estimator
                terms.update(policy_loss=policy_loss.detach(), approx_kl=approx_kl, **extra_terms,
                             clip_fraction=((ratio - 1).abs() > clip).float().mean())
        return loss, terms

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            **({"reward_scaler": self.reward_scaler.state_dict()} if self.reward_scaler is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.rollout.restart(seed=self.context.seed + self.env_steps)  # new episodes: env state is not checkpointed

    def inference_policy(self):
        return self.policy.eval()

    def close(self) -> None:
        self.rollout.close()
