"""Behaviour cloning: minimise the policy's own training loss on demonstrations.

AdamW with linear warm-up then cosine decay, gradient clipping, and an exponential moving average
of the weights that is what gets evaluated and deployed (Diffusion Policy found EMA weights
markedly better for diffusion models; it costs nothing at inference). The EMA averages parameters
only: buffers (the normalisers, fixed during training) are never averaged.

One `step()` is one gradient update on a batch of (observation window, action chunk) windows.
Batches are drawn with BC's own CPU generator and the loss noise with the run's generator, both
saved with the checkpoint, so an interrupted run resumes to the same weights bit for bit.
A policy without parameters is trained by fitting nothing: its normalisers already hold the data.

Under torchrun (`robotune/training/distributed.py`) each of the N processes draws batch_size / N
windows with its own generators and DistributedDataParallel averages the gradients, so a step is
one update on the global batch of batch_size, and the logged loss is its mean over the processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from robotune.core.algorithm import Algorithm, AlgorithmConfig, TrainingContext
from robotune.core.policy import Policy
from robotune.core.registry import register
from robotune.training.distributed import (
    distributed_policy_loss,
    gather_rank_states,
    local_batch_size,
    mean_over_ranks,
    own_rank_state,
)
from robotune.training.samplers import WindowSampler, episode_range


@dataclass
class BCConfig(AlgorithmConfig):
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_steps: int = 100
    grad_clip: float = 10.0
    ema_decay: float = 0.995  # 0 disables the EMA copy
    # Hold out the last episodes (this fraction, at least one) and report their loss as val_loss
    # every `validation_every` steps, on the evaluated (EMA) weights; 0 trains on everything.
    validation_fraction: float = 0.0
    validation_every: int = 100
    validation_batches: int = 4  # batches of batch_size, drawn once with a fixed seed
    # Run the policy's training pass in bfloat16 (parameters, optimiser state and loss stay float32).
    # On CPUs with AVX512-BF16 it mostly cheapens convolutions: benchmarks/unet_speed.py measures it.
    bf16_autocast: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"algo.validation_fraction must be in [0, 1), got {self.validation_fraction}")


@register("algorithm", "bc")
class BehaviourCloning(Algorithm):
    config_class = BCConfig
    config: BCConfig
    supports_distributed = True

    @classmethod
    def needs_dataset(cls, config: BCConfig) -> bool:
        return True

    def __init__(self, config: BCConfig, context: TrainingContext) -> None:
        super().__init__(config, context)
        policy = self.policy
        train_data, self.validation = self._split(context.dataset)
        self.sampler = WindowSampler(train_data, policy.config.obs_horizon, policy.config.horizon)
        self.batch_generator = torch.Generator().manual_seed(context.seed)
        self.rank_batch_size = local_batch_size(config.batch_size, context.world_size)
        self.parameters = [p for p in policy.parameters() if p.requires_grad]
        # Wrapped before the EMA copies the weights: the wrap gives every rank rank 0's weights.
        self.compute_loss = (
            distributed_policy_loss(policy, context.device) if context.world_size > 1 and self.parameters else policy.loss
        )
        self.optimizer = (
            torch.optim.AdamW(self.parameters, lr=config.lr, weight_decay=config.weight_decay) if self.parameters else None
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor) if self.optimizer else None
        self.ema = (
            AveragedModel(policy, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=False)
            if config.ema_decay > 0 and self.parameters
            else None
        )

    def _split(self, dataset):
        """(training episodes, a fixed list of validation batches or None)."""
        if self.config.validation_fraction == 0:
            return dataset, None
        held_out = max(1, round(len(dataset) * self.config.validation_fraction))
        if held_out >= len(dataset):
            raise ValueError(f"algo.validation_fraction={self.config.validation_fraction} leaves no training episode of {len(dataset)}")
        cut = len(dataset) - held_out
        pc = self.policy.config
        sampler = WindowSampler(episode_range(dataset, cut, len(dataset)), pc.obs_horizon, pc.horizon)
        generator = torch.Generator().manual_seed(self.context.seed + 1)
        batches = [sampler.sample(self.config.batch_size, generator) for _ in range(self.config.validation_batches)]
        return episode_range(dataset, 0, cut), batches

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean loss of the evaluated weights on the held-out batches, with fixed loss noise."""
        policy = self.inference_policy()
        generator = torch.Generator(device=self.context.device).manual_seed(self.context.seed + 2)
        losses = [policy.loss({k: v.to(self.context.device) for k, v in b.items()}, generator)[0].item() for b in self.validation]
        return sum(losses) / len(losses)

    def _lr_factor(self, step: int) -> float:
        if step < self.config.warmup_steps:
            return (step + 1) / self.config.warmup_steps
        progress = (step - self.config.warmup_steps) / max(1, self.config.steps - self.config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def step(self) -> dict[str, float]:
        batch = {k: v.to(self.context.device) for k, v in self.sampler.sample(self.rank_batch_size, self.batch_generator).items()}
        self.policy.train()
        with torch.autocast(self.context.device.type, dtype=torch.bfloat16, enabled=self.config.bf16_autocast):
            loss, metrics = self.compute_loss(batch, self.context.generator)
        self.grad_steps += 1
        if self.optimizer is None:
            return {"loss": loss.item(), **metrics}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.policy)
        global_loss = mean_over_ranks(loss.detach(), self.context.world_size).item()
        metrics = {"loss": global_loss, "grad_norm": grad_norm.item(), "lr": self.scheduler.get_last_lr()[0], **metrics}
        if self.validation and self.grad_steps % self.config.validation_every == 0:
            metrics["val_loss"] = self.validation_loss()
        return metrics

    def inference_policy(self) -> Policy:
        policy = self.ema.module if self.ema is not None else self.policy
        return policy.eval()

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "batch_generator": gather_rank_states(self.batch_generator.get_state(), self.context.world_size),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.optimizer:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        context = self.context
        self.batch_generator.set_state(own_rank_state(state["batch_generator"], context.rank, context.world_size, "batch_generator"))
