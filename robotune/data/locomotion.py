"""Offline locomotion datasets of known quality (D4RL-style), generated on this machine from experts.

Hopper, Walker2d and HalfCheetah (Gymnasium MuJoCo `*-v5`) are driven by the expert Gaussian MLPs
in `shared/data/locomotion_experts/*.npz` (format in that folder's README), at these levels:

| level           | behaviour                                                                        |
|-----------------|----------------------------------------------------------------------------------|
| `random`        | uniform random actions                                                           |
| `medium`        | the expert's mean action plus Gaussian noise of std `medium_noise`, calibrated per environment so the data scores about a third to a half of the expert's normalised return |
| `medium-replay` | the medium behaviour, with each step's action replaced by a uniform random one with probability (1 - p)^3 at the fraction p of the dataset recorded: a spread from random to medium quality, weighted towards the better end as a learner's replay buffer is (it improves fastest early); a linear fall left the data mostly random (walker2d: 8 normalised per step) |
| `expert`        | the expert's mean action plus Gaussian noise of std `EXPERT_NOISE`, for state coverage |
| `medium-expert` | the `medium` and `expert` datasets concatenated, as D4RL builds it               |

Scores are D4RL-normalised: 100 * (R - random) / (expert - random), with D4RL's published reference
returns (stored in each dataset's metadata as `reference_returns`). The returns of a random policy
and of the deterministic expert are also measured here and stored beside them (`measured_returns`).

Generation is deterministic from a seed: each episode's reset seed and noise come from one NumPy
generator. A dataset is cached as a robotune store, `<out_dir>/<env>-<level>-<steps>-seed<seed>.zarr`,
and reused while its `generation_key` (the settings, the expert file's hash and the simulator
versions) matches; otherwise it is rebuilt. The last episode runs to its end, so a dataset holds
slightly more steps than asked, and every episode is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from robotune.core.dataset import DatasetError, Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.data.store import Progress, is_store, provenance, read_store, write_store

GENERATOR_VERSION = 2  # bump when a change here alters generated data (2: medium-replay's cubic schedule)
EXPERT_NOISE = 0.05
LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
EXPERT_KEYS = ("obs_mean", "obs_std", "hidden0_W", "hidden0_b", "hidden1_W", "hidden1_b", "out_W", "out_b")


@dataclass(frozen=True)
class LocomotionEnv:
    name: str
    env_id: str
    expert_file: str
    d4rl_random: float  # D4RL's REF_MIN_SCORE (d4rl/infos.py)
    d4rl_expert: float  # D4RL's REF_MAX_SCORE
    medium_noise: float  # action noise std of the "medium" level (calibration in the README table)

    def normalised(self, returns: np.ndarray) -> np.ndarray:
        return 100 * (np.asarray(returns) - self.d4rl_random) / (self.d4rl_expert - self.d4rl_random)


ENVS = {
    env.name: env
    for env in (
        LocomotionEnv("hopper", "Hopper-v5", "Hopper.npz", -20.272305, 3234.3, medium_noise=0.75),
        LocomotionEnv("walker2d", "Walker2d-v5", "Walker2d.npz", 1.629008, 4592.3, medium_noise=0.6),
        LocomotionEnv("halfcheetah", "HalfCheetah-v5", "HalfCheetah.npz", -280.178953, 12135.0, medium_noise=0.5),
    )
}


def default_experts_dir() -> Path:
    """`$ROBOTUNE_LOCOMOTION_EXPERTS`, else `shared/data/locomotion_experts` beside the repository."""
    if "ROBOTUNE_LOCOMOTION_EXPERTS" in os.environ:
        return Path(os.environ["ROBOTUNE_LOCOMOTION_EXPERTS"])
    repository = Path(__file__).resolve().parents[2]
    return repository.parent / "shared" / "data" / "locomotion_experts"


class ExpertPolicy:
    """The expert's deterministic action: a tanh MLP on standardised observations (obs_dim,) -> (act_dim,)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise DatasetError(
                f"expert policy file {path} does not exist; give the folder of the locomotion experts "
                "(--experts or $ROBOTUNE_LOCOMOTION_EXPERTS)"
            )
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in EXPERT_KEYS if k not in arrays.files]
            if missing:
                raise DatasetError(f"expert policy file {path} lacks {missing}")
            if "nonlin" in arrays.files and str(arrays["nonlin"]) != "tanh":
                raise DatasetError(f"expert policy file {path}: activation {arrays['nonlin']}, only tanh is supported")
            self.weights = {k: arrays[k].astype(np.float64) for k in EXPERT_KEYS}
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        w = self.weights
        h = (obs - w["obs_mean"]) / (w["obs_std"] + 1e-6)
        h = np.tanh(h @ w["hidden0_W"] + w["hidden0_b"])
        h = np.tanh(h @ w["hidden1_W"] + w["hidden1_b"])
        return h @ w["out_W"] + w["out_b"]


@dataclass(frozen=True)
class Behaviour:
    """How a step's action is chosen: the expert's mean plus noise, or uniform random."""

    action_noise: float  # std of Gaussian noise added to the expert's mean action
    random_fraction: float  # probability that the step's action is uniform random instead


def behaviour_schedule(env: LocomotionEnv, level: str) -> Callable[[float], Behaviour]:
    """The behaviour of `level` as a function of the fraction of the dataset's steps already recorded."""
    if level == "random":
        return lambda progress: Behaviour(0.0, 1.0)
    if level == "medium":
        return lambda progress: Behaviour(env.medium_noise, 0.0)
    if level == "medium-replay":
        return lambda progress: Behaviour(env.medium_noise, (1.0 - progress) ** 3)
    if level == "expert":
        return lambda progress: Behaviour(EXPERT_NOISE, 0.0)
    raise DatasetError(f"unknown locomotion level {level!r}; levels: {', '.join(LEVELS)}")


def record(
    env: LocomotionEnv,
    policy: ExpertPolicy,
    schedule: Callable[[float], Behaviour],
    steps: int,
    seed: int,
    progress: Progress | None = None,
) -> list[Episode]:
    """Episodes until at least `steps` steps are recorded; the last episode runs to its end."""
    rng = np.random.default_rng(seed)
    gym_env = gym.make(env.env_id, disable_env_checker=True)
    low, high = gym_env.action_space.low, gym_env.action_space.high
    episodes, done_steps = [], 0
    try:
        while done_steps < steps:
            obs, _ = gym_env.reset(seed=int(rng.integers(2**31)))
            behaviour = schedule(done_steps / steps)
            columns: dict[str, list] = {"obs": [], "action": [], "reward": [], "terminated": [], "truncated": []}
            while True:
                if rng.random() < behaviour.random_fraction:
                    action = rng.uniform(low, high)
                else:
                    noise = rng.normal(0.0, behaviour.action_noise, low.shape) if behaviour.action_noise else 0.0
                    action = np.clip(policy(obs) + noise, low, high)
                next_obs, reward, terminated, truncated, _ = gym_env.step(action)
                for key, value in zip(columns, (obs, action, reward, terminated, truncated)):
                    columns[key].append(value)
                obs = next_obs
                if terminated or truncated:
                    break
            episodes.append(
                Episode(
                    obs=np.asarray(columns["obs"], np.float32),
                    action=np.asarray(columns["action"], np.float32),
                    reward=np.asarray(columns["reward"], np.float32),
                    terminated=np.asarray(columns["terminated"], bool),
                    truncated=np.asarray(columns["truncated"], bool),
                    final_obs=np.asarray(obs, np.float32),
                )
            )
            done_steps += len(columns["action"])
            if progress:
                progress(min(done_steps, steps), steps)
    finally:
        gym_env.close()
    return episodes


def measure_returns(env: LocomotionEnv, policy: ExpertPolicy, episodes: int, seed: int) -> dict[str, float]:
    """Mean return of a uniform random policy and of the deterministic expert over `episodes` each."""
    out = {}
    for name, behaviour in (("random", Behaviour(0.0, 1.0)), ("expert", Behaviour(0.0, 0.0))):
        runs = [record(env, policy, lambda progress: behaviour, steps=1, seed=seed + k)[0] for k in range(episodes)]
        out[name] = float(np.mean([ep.reward.sum(dtype=np.float64) for ep in runs]))
    out["episodes"] = episodes
    return out


def generate(
    env_name: str,
    level: str,
    steps: int,
    seed: int = 0,
    out_dir: str | Path = "data/locomotion",
    experts_dir: str | Path | None = None,
    reference_episodes: int = 5,
    progress: Progress | None = None,
) -> tuple[EpisodeDataset, Path]:
    """The dataset `env_name`/`level` of about `steps` steps, from the cache or generated and cached.

    `medium-expert` holds `steps` of each of its halves. Returns the dataset and its store's path.
    """
    if env_name not in ENVS:
        raise DatasetError(f"unknown locomotion environment {env_name!r}; choose from {sorted(ENVS)}")
    if level not in LEVELS:
        raise DatasetError(f"unknown locomotion level {level!r}; levels: {', '.join(LEVELS)}")
    env = ENVS[env_name]
    expert_path = Path(experts_dir or default_experts_dir()) / env.expert_file
    policy = ExpertPolicy(expert_path)
    settings = {
        "env": asdict(env),
        "level": level,
        "steps": steps,
        "seed": seed,
        "expert_noise": EXPERT_NOISE,
        "expert_sha256": policy.sha256,
        "generator_version": GENERATOR_VERSION,
        "gymnasium": gym.__version__,
        "mujoco": mujoco.__version__,
        "reference_episodes": reference_episodes,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(out_dir) / f"{env_name}-{level}-{steps}-seed{seed}.zarr"
    if is_store(path):
        cached = read_store(path)
        if cached.metadata.get("generation_key") == key:
            return cached, path

    if level == "medium-expert":
        halves = [generate(env_name, half, steps, seed, out_dir, experts_dir, reference_episodes, progress)[0] for half in ("medium", "expert")]
        episodes = [half.episode(i) for half in halves for i in range(len(half))]
        measured = halves[0].metadata["measured_returns"]
    else:
        level_seed = seed * len(LEVELS) + LEVELS.index(level)  # distinct noise and resets per level
        episodes = record(env, policy, behaviour_schedule(env, level), steps, level_seed, progress)
        measured = measure_returns(env, policy, reference_episodes, seed=10_000 + seed)
    returns = np.array([ep.reward.sum(dtype=np.float64) for ep in episodes])
    metadata: dict[str, Any] = {
        "provenance": provenance("robotune.data.locomotion", expert_path, **settings),
        "generation_key": key,
        "env_id": env.env_id,
        "fps": 1.0 / _control_period(env.env_id),
        "reference_returns": {"random": env.d4rl_random, "expert": env.d4rl_expert, "source": "D4RL d4rl/infos.py"},
        "measured_returns": measured,
        "normalised_return_mean": float(env.normalised(returns).mean()),
    }
    dataset = concatenate_episodes(episodes, source=f"<{env_name}-{level} generated>", metadata=metadata)
    write_store(dataset, path)
    return read_store(path), path


def _control_period(env_id: str) -> float:
    """Seconds per environment step (MuJoCo timestep times frame skip)."""
    gym_env = gym.make(env_id, disable_env_checker=True)
    try:
        return float(gym_env.unwrapped.dt)
    finally:
        gym_env.close()
