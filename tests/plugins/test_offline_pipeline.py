"""Every offline method's preset trains through `robotune train` with a tiny budget; offline-to-online
continues from a checkpoint with its critic and data; a CDSA-corrected checkpoint deploys with transport=sim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robotune.core.checkpoint import load_checkpoint, load_training_state, resolve_checkpoint
from robotune.core.regularizer import ActionCorrectedPolicy
from robotune.training.loop import train
from tests.helpers import compose_config

METHODS = ("td3", "bc", "td3_bc", "prdc", "spot", "a2pr", "rebrac", "sac_rnd", "cdsa", "iql")
# Tiny networks and fits; everything else comes from the preset.
TINY = ["critic.hidden_dims=[32,32]", "policy.hidden_dim=32", "algo.batch_size=32", "eval.episodes=1", "eval.num_envs=1", "logger=quiet", "checkpoint_every=10"]
TINY_REGULARIZERS = {
    "spot": ["regularizer.spot.vae_steps=20", "regularizer.spot.hidden_dim=32"],
    "a2pr": ["regularizer.a2pr.hidden_dim=32", "regularizer.a2pr.value_hidden_dim=32"],
    "sac_rnd": ["regularizer.sac_rnd.rnd_steps=20", "regularizer.sac_rnd.hidden_dim=32"],
    "cdsa": ["regularizer.cdsa.score_steps=20", "regularizer.cdsa.hidden_dim=32"],
}


@pytest.fixture(scope="module")
def hopper_data(tmp_path_factory) -> Path:
    from robotune.data.locomotion import generate

    _, path = generate("hopper", "medium", 1200, seed=0, out_dir=tmp_path_factory.mktemp("locomotion"), reference_episodes=1)
    return path


def train_preset(method: str, data: Path, run_dir: Path, steps: int = 20, extra: list[str] = ()) -> dict:
    overrides = [f"+offline={method}_hopper", f"data.path={data}", f"run_dir={run_dir}", f"algo.steps={steps}", *TINY, *TINY_REGULARIZERS.get(method, []), *extra]
    return train(compose_config("train", overrides))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_offline_and_reports_a_normalised_score(method, hopper_data, tmp_path):
    summary = train_preset(method, hopper_data, tmp_path / method)
    assert summary["grad_steps"] == 20 and summary["env_steps"] == 0
    assert isinstance(summary["eval_normalized_score"], float)
    checkpoint = load_checkpoint(tmp_path / method)
    assert isinstance(checkpoint.policy, ActionCorrectedPolicy) == (method == "cdsa")


def test_offline_to_online_continues_policy_critic_and_data(hopper_data, tmp_path):
    train_preset("td3_bc", hopper_data, tmp_path / "offline", steps=30)
    offline_state = load_training_state(resolve_checkpoint(tmp_path / "offline"))["algorithm"]
    overrides = [
        "task=gymnasium", "task.env_id=Hopper-v5", "algo=actor_critic", "policy=td3_actor", "regularizer=[td3_bc]",
        f"init_from={tmp_path / 'offline'}", "algo.critic_from=${init_from}", f"data.path={hopper_data}", "algo.offline_fraction=0.5",
        "algo.q_weight=2.5", "algo.normalize_q=true", "algo.steps=300", "algo.learning_starts=100", "algo.buffer_size=1000",
        f"run_dir={tmp_path / 'online'}", *TINY,
    ]
    cfg = compose_config("train", overrides)
    summary = train(cfg)
    assert summary["env_steps"] == 300 and summary["grad_steps"] == 201
    assert summary["init_from"] == str(resolve_checkpoint(tmp_path / "offline"))
    online = load_checkpoint(tmp_path / "online")
    assert json.loads((online.path / "meta.json").read_text())["parent"]["checkpoint"] == summary["init_from"]
    # the z-scored observation normaliser came with the policy and stayed
    offline_center = offline_state["policy"]["obs_normalizer.center"]
    assert (online.policy.obs_normalizer.center == offline_center).all()


def test_offline_to_online_starts_from_the_offline_critic(hopper_data, tmp_path):
    from robotune.training.loop import build_components

    train_preset("td3_bc", hopper_data, tmp_path / "offline", steps=10)
    cfg = compose_config("train", [
        "task=gymnasium", "task.env_id=Hopper-v5", "algo=actor_critic", "policy=td3_actor", f"init_from={tmp_path / 'offline'}",
        "algo.critic_from=${init_from}", f"data.path={hopper_data}", "algo.offline_fraction=0.5", f"run_dir={tmp_path / 'online'}", *TINY,
    ])
    engine = build_components(cfg, None).algorithm
    saved = load_training_state(resolve_checkpoint(tmp_path / "offline"))["algorithm"]["critic"]
    for name, value in engine.critic.state_dict().items():
        assert (value == saved[name]).all(), name
    engine.close()


def test_cdsa_corrected_checkpoint_deploys_with_sim_transport(tmp_path):
    from robotune.deploy.cli import deploy

    cfg = compose_config("train", [
        "task=reach_around", "algo=offline", "policy=td3_actor", "regularizer=[td3_bc,cdsa]", "algo.q_weight=2.5", "algo.normalize_q=true",
        "algo.steps=20", "data.num_episodes=4", f"data.cache_dir={tmp_path / 'data'}", f"run_dir={tmp_path / 'run'}",
        *TINY, *TINY_REGULARIZERS["cdsa"],
    ])
    train(cfg)
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.meta["action_correctors"] == ["cdsa"]
    summary = deploy(compose_config("deploy", [f"checkpoint={tmp_path / 'run'}", "robot=planar_arm", "transport=sim", "episodes=1", "lead_ticks=0", "blend_steps=0"]))
    assert summary["episodes"] == 1 and summary["commands_outside_limits"] == 0
