"""How far can steering a generative policy's initial noise move its success? A check before DSRL.

    python benchmarks/noise_steering.py --checkpoint runs/base-flow --episodes 20 --samples 16

DSRL (`algo=dsrl`) never changes the base policy: it only chooses the initial noise that the base
turns into a chunk. So it can reach only what some noise already does. This script measures that
on the checkpoint's own task, with the policy's own sampler, in three ways:
- `deterministic`: success over `--episodes` seeded episodes with the policy's deterministic sample
  (what `robotune eval` reports);
- `sampled`: the same episodes run `--samples` times with random initial noise (a different
  sampling seed each time) through the noise-free sampler that DSRL steers (DDIM at η = 0, the flow's
  Euler steps): the mean success, and for each episode seed how many of the samples
  succeeded (`per_seed_successes`). A seed whose count is 0 is one no tried noise sequence solves;
  `seeds_solved` counts the others, an estimate of the ceiling for noise steering (a closed-loop
  noise actor can do better than independent draws, but it steers the same map);
- `chunk_std_at_start`: the spread of that sampler's chunk over initial noises at each episode's first
  observation (mean over chunk entries of the std over `--samples` samples, normalised action units).
The last line is one JSON record with these fields.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from robotune.core.checkpoint import load_checkpoint
from robotune.core.task import build_task
from robotune.processing.pipeline import ObservationProcessors
from robotune.processing.task import processed_task
from robotune.rollout.chunking import ChunkController
from robotune.rollout.evaluation import evaluate


def sampled_successes(policy, env, episodes: int, seed: int, sampling_seed: int) -> np.ndarray:
    """(episodes,) bool: success of each seeded episode with random initial noise from `sampling_seed`."""
    success = np.zeros(episodes, dtype=bool)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        # deterministic=True: the noise-free sampler (DDIM at eta = 0, flow's Euler steps), the map DSRL steers,
        # from an initial noise drawn with this run's own seed
        controller = ChunkController(policy, 1, deterministic=True, seed=sampling_seed * 1_000_003 + episode)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(controller.act(obs[None])[0])
            success[episode] |= bool(info.get("is_success", False))
            done = terminated or truncated
    return success


def chunk_std_at_start(policy, env, episodes: int, seed: int, samples: int) -> float:
    """Mean over episodes and chunk entries of the std over `samples` random-noise chunks at the first observation."""
    generator = torch.Generator().manual_seed(0)
    stds = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        window = torch.from_numpy(np.repeat(obs[None, None].astype(np.float32), policy.config.obs_horizon, axis=1))
        chunks = policy.predict_chunk(window.repeat(samples, 1, 1), deterministic=True, generator=generator)
        stds.append(policy.action_normalizer.normalize(chunks).std(dim=0).mean().item())
    return float(np.mean(stds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint or run directory of a diffusion or flow policy")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--samples", type=int, default=16, help="random-noise runs of every episode")
    parser.add_argument("--seed", type=int, default=100_000, help="the first episode's seed, as robotune eval")
    args = parser.parse_args()
    torch.set_num_threads(1)

    checkpoint = load_checkpoint(args.checkpoint)
    task = processed_task(build_task(checkpoint.config.task), ObservationProcessors.from_meta(checkpoint.meta))
    policy = checkpoint.policy.export_for_inference()
    deterministic = evaluate(policy, task, episodes=args.episodes, seed=args.seed).success_rate
    env = task.make_env()  # one for every run: episodes are reset with their seeds, as in evaluation
    runs = np.stack([sampled_successes(policy, env, args.episodes, args.seed, k) for k in range(args.samples)])
    spread = chunk_std_at_start(policy, env, args.episodes, args.seed, args.samples)
    env.close()
    per_seed = runs.sum(axis=0)
    print(json.dumps({
        "checkpoint": str(checkpoint.path),
        "policy": checkpoint.config.policy.name,
        "episodes": args.episodes,
        "samples": args.samples,
        "deterministic_success": deterministic,
        "sampled_success": float(runs.mean()),
        "per_seed_successes": per_seed.tolist(),
        "seeds_solved": int((per_seed > 0).sum()),
        "chunk_std_at_start": round(spread, 4),
    }))


if __name__ == "__main__":
    main()
