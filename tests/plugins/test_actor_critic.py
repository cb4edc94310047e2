"""The actor-critic engine: SAC actor, unregularised TD3, a flow actor anchored by its own loss, z-scoring, state, errors,
and the online engine's dataset only when it mixes offline data in."""

import copy

import numpy as np
import pytest
import torch

from robotune.core.normalization import Normalizer
from robotune.plugins.actor_critic import ActorCritic, ActorCriticConfig, OfflineActorCritic, OfflineActorCriticConfig
from robotune.plugins.flow_matching import FlowConfig, FlowMatchingPolicy
from robotune.training.loop import build_components
from tests.helpers import compose_config
from tests.plugins.offline_fixtures import behaviour_error, offline_context, policy_error, target_dataset, tiny_actor
from tests.rollout.toy_envs import TargetTask


def run(engine, steps):
    for _ in range(steps):
        metrics = engine.step()
    return metrics


def test_observations_are_z_scored_into_the_policy_normaliser(tmp_path):
    dataset = target_dataset()
    policy = tiny_actor()
    OfflineActorCritic(OfflineActorCriticConfig(name="offline"), offline_context(policy, dataset, tmp_path))
    obs = torch.from_numpy(np.asarray(dataset.obs))
    normalised = policy.obs_normalizer.normalize(obs)
    torch.testing.assert_close(normalised.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised.std(0, unbiased=False), torch.ones(2) / (1 + 1e-3 / obs.std(0, unbiased=False)), atol=1e-4, rtol=0)


def test_sac_actor_with_sac_rnd_learns_offline(tmp_path):
    dataset = target_dataset()
    config = OfflineActorCriticConfig(name="offline", actor="sac", actor_q="min", batch_size=64, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, gamma=0.5)
    regularizers = {"sac_rnd": {"weight": 1.0, "hidden_dim": 32, "rnd_steps": 200, "rnd_lr": 1e-3}}
    engine = OfflineActorCritic(config, offline_context(tiny_actor(stochastic=True), dataset, tmp_path, regularizers, critic={"layer_norm": True}))
    metrics = run(engine, 600)
    assert "alpha" in metrics and "rnd_bonus_next" in metrics
    assert policy_error(engine.inference_policy(), dataset) < behaviour_error(dataset)


def test_td3_updates_its_actor_every_policy_freq_steps(tmp_path):
    engine = OfflineActorCritic(OfflineActorCriticConfig(name="offline", policy_freq=3, batch_size=16), offline_context(tiny_actor(), target_dataset(), tmp_path))
    logged = ["actor_loss" in engine.step() for _ in range(6)]
    assert logged == [True, False, False, True, False, False]


def test_flow_actor_guided_by_q_and_anchored_by_its_own_loss_learns(tmp_path):
    dataset = target_dataset()
    task = TargetTask()
    torch.manual_seed(0)
    flow_config = FlowConfig(name="flow", obs_horizon=1, horizon=1, act_steps=1, hidden_dim=64, num_blocks=1, time_embed_dim=8, num_steps=3, fast_inference=False)
    policy = FlowMatchingPolicy(flow_config, task.spec, Normalizer.identity(2), Normalizer(task.spec.action_low, task.spec.action_high))
    config = OfflineActorCriticConfig(name="offline", batch_size=64, actor_lr=1e-3, critic_lr=1e-3, q_weight=0.5, normalize_q=True, policy_loss_weight=1.0, gamma=0.5)
    engine = OfflineActorCritic(config, offline_context(policy, dataset, tmp_path))
    metrics = run(engine, 801)
    assert torch.isfinite(metrics["policy_loss"])
    assert policy_error(engine.inference_policy(), dataset) < behaviour_error(dataset)


def test_state_round_trip_resumes_the_same_update(tmp_path):
    dataset = target_dataset()

    def make(work_dir):
        return OfflineActorCritic(OfflineActorCriticConfig(name="offline", batch_size=16), offline_context(tiny_actor(), dataset, work_dir, {"td3_bc": {}}))

    engine = make(tmp_path / "a")
    run(engine, 4)
    state, generator_state = copy.deepcopy(engine.state_dict()), engine.context.generator.get_state()
    expected = engine.step()
    resumed = make(tmp_path / "b")
    resumed.load_state_dict(state)
    resumed.load_counters(engine.counters() | {"grad_steps": 4})
    resumed.context.generator.set_state(generator_state)
    got = resumed.step()
    assert got.keys() == expected.keys()
    for name in ("critic_loss", "actor_loss", "td3_bc_mse"):
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)


def test_chunked_policies_are_refused_naming_the_field(tmp_path):
    policy = tiny_actor()
    policy.config.act_steps = 2
    with pytest.raises(ValueError, match="policy.obs_horizon=1 and policy.act_steps=1"):
        OfflineActorCritic(OfflineActorCriticConfig(name="offline"), offline_context(policy, target_dataset(), tmp_path))
    with pytest.raises(ValueError, match="algo.actor"):
        OfflineActorCriticConfig(name="offline", actor="ddpg")


def test_one_update_matches_the_td3_bc_and_rebrac_formulas(tmp_path):
    """critic loss Σ_e mean (Q_e − y)², y = r + γ(1 − d)(min_e Q̄_e(s', π̄(s')) − β_c ‖π̄(s') − a'‖²);
    actor loss −α mean Q_1(s, π(s)) / mean |Q_1| + MSE(π(s), a), recomputed from the engine's own networks."""
    dataset = target_dataset()
    config = OfflineActorCriticConfig(name="offline", batch_size=8, policy_noise=0.0, q_weight=2.5, normalize_q=True)
    regularizers = {"td3_bc": {}, "rebrac": {"actor_weight": 0.0, "critic_weight": 0.3}}
    engine = OfflineActorCritic(config, offline_context(tiny_actor(), dataset, tmp_path, regularizers))
    batch = engine.data.sample(8, torch.Generator().manual_seed(3))
    policy_before, target_policy, target_critic = (copy.deepcopy(m) for m in (engine.policy, engine.target_policy, engine.target_critic))
    critic_before = copy.deepcopy(engine.critic)
    metrics = engine.update(batch)
    with torch.no_grad():
        next_action = target_policy.sample_chunk_norm(batch["next_obs"][:, None], True, None)[:, 0]
        penalty = 0.3 * (next_action - batch["next_action"]).square().sum(-1)
        y = batch["reward"] + batch["bootstrap"] * (target_critic.q_value(batch["next_obs"], next_action).min(0).values - penalty)
        critic_loss = (critic_before.q_value(batch["obs"], batch["action"]) - y).square().mean(1).sum()
        action = policy_before.sample_chunk_norm(batch["obs"][:, None], True, None)[:, 0]
        q1 = engine.critic.q_value(batch["obs"], action)[0]
        actor_loss = -2.5 * q1.mean() / q1.abs().mean() + (action - batch["action"]).square().mean()
    torch.testing.assert_close(metrics["critic_loss"], critic_loss)
    torch.testing.assert_close(metrics["actor_loss"], actor_loss)


def test_the_online_engine_loads_a_dataset_only_when_it_mixes_offline_data_in(tmp_path):
    """`needs_dataset` follows the config: pure online SAC records no demonstrations; offline_fraction > 0
    gets the run's dataset (here the task's recorded demonstrations) and draws that share of each batch from it."""
    common = ["task=reach_around", "policy.hidden_dim=32", "critic.hidden_dims=[32,32]", "data.num_episodes=2",
              f"data.cache_dir={tmp_path / 'data'}", "algo.batch_size=8", "algo.buffer_size=64", "logger=quiet"]
    online = build_components(compose_config("train", [*common, "algo=sac", "policy=gaussian_sac", f"run_dir={tmp_path / 'sac'}"]), None)
    assert online.dataset is None and online.algorithm.data is None
    online.algorithm.close()
    mixed = build_components(compose_config("train", [
        *common, "algo=actor_critic", "policy=td3_actor", "algo.offline_fraction=0.25", "algo.learning_starts=4", f"run_dir={tmp_path / 'mixed'}",
    ]), None)
    engine = mixed.algorithm
    assert mixed.dataset is not None and len(engine.data) == mixed.dataset.num_steps
    for _ in range(4):
        engine.step()
    batch = engine.replay_batch()
    assert batch["obs"].shape == (8, engine.obs_size) and engine.grad_steps == 1
    offline_rows = engine.data.fields["obs"]
    assert (batch["obs"][:2, None] == offline_rows[None]).all(-1).any(-1).all()  # the first quarter comes from the dataset
    engine.close()
    with pytest.raises(ValueError, match="algo.offline_fraction=0.5 .* no dataset"):
        ActorCritic(ActorCriticConfig(name="actor_critic", offline_fraction=0.5), offline_context(tiny_actor(), None, tmp_path / "none"))
