"""reach_around's domain randomisation: off by default, and each hook changes what it names, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from robotune.core.task import build_task
from robotune.robots.reach_around.task import ReachAroundConfig, ReachAroundEnv

SEED = 11


def model_values(env: ReachAroundEnv) -> dict[str, np.ndarray]:
    m = env.model
    return {
        "mass": m.body_mass.copy(),
        "inertia": m.body_inertia.copy(),
        "friction": m.geom_friction[:, 0].copy(),
        "kp": m.actuator_gainprm[:, 0].copy(),
        "bias_kp": m.actuator_biasprm[:, 1].copy(),
    }


def rollout(env: ReachAroundEnv, seed: int, steps: int = 15) -> np.ndarray:
    """Observations under a fixed sequence of joint targets, (steps + 1, obs_dim)."""
    obs, _ = env.reset(seed=seed)
    targets = np.linspace(obs[:2], obs[:2] + np.array([0.6, -0.4]), steps)
    return np.array([obs] + [env.step(target.astype(np.float32))[0] for target in targets])


def test_defaults_leave_the_model_and_observations_as_they_were() -> None:
    plain, randomizable = ReachAroundEnv(ReachAroundConfig()), ReachAroundEnv(ReachAroundConfig())
    nominal = model_values(plain)
    plain_obs, again_obs = rollout(plain, SEED), rollout(randomizable, SEED)
    assert np.array_equal(plain_obs, again_obs)
    for name, value in model_values(plain).items():
        assert np.array_equal(value, nominal[name]), name


@pytest.mark.parametrize(
    ("field", "changed"),
    [("mass_scale", ("mass", "inertia")), ("friction_scale", ("friction",)), ("actuator_gain_scale", ("kp", "bias_kp"))],
)
def test_model_scales_change_the_model_within_range_reproducibly(field: str, changed: tuple[str, ...]) -> None:
    env = ReachAroundEnv(ReachAroundConfig(**{field: (0.5, 2.0)}))
    nominal = model_values(env)
    env.reset(seed=SEED)
    first = model_values(env)
    env.reset(seed=SEED + 1)
    other = model_values(env)
    env.reset(seed=SEED)
    again = model_values(env)
    for name in nominal:
        assert np.array_equal(first[name], again[name]), f"{name} differs for the same seed"
        if name not in changed:
            assert np.array_equal(first[name], nominal[name]), f"{field} must not change {name}"
    for name in changed:
        moved = nominal[name] != 0
        ratio = first[name][moved] / nominal[name][moved]
        assert not np.allclose(ratio, 1.0) and np.all((ratio >= 0.5) & (ratio <= 2.0)), name
        assert not np.array_equal(first[name], other[name]), f"{name} is the same for another seed"
    if field == "actuator_gain_scale":  # kp and the bias that makes a position servo scale together
        assert np.allclose(first["bias_kp"], -first["kp"])


def test_a_seed_keeps_its_start_and_goal_under_randomisation() -> None:
    plain = ReachAroundEnv(ReachAroundConfig())
    randomized = ReachAroundEnv(ReachAroundConfig(mass_scale=(0.5, 2.0), observation_noise=0.0))
    assert np.array_equal(plain.reset(seed=SEED)[0], randomized.reset(seed=SEED)[0])


def test_heavier_links_change_the_motion() -> None:
    plain = rollout(ReachAroundEnv(ReachAroundConfig()), SEED)
    heavy = rollout(ReachAroundEnv(ReachAroundConfig(mass_scale=(3.0, 4.0))), SEED)
    assert np.abs(plain[:, :4] - heavy[:, :4]).max() > 1e-3


def test_observation_noise_has_the_configured_spread_and_is_seeded() -> None:
    env = ReachAroundEnv(ReachAroundConfig(observation_noise=0.05))
    clean_env = ReachAroundEnv(ReachAroundConfig())
    noisy, noisy_again = rollout(env, SEED, steps=60), rollout(env, SEED, steps=60)
    clean = rollout(clean_env, SEED, steps=60)
    assert np.array_equal(noisy, noisy_again)
    error = noisy - clean
    assert error.std() == pytest.approx(0.05, rel=0.2)
    assert not np.array_equal(noisy, rollout(env, SEED + 1, steps=60)[: len(noisy)])


def test_action_delay_applies_each_action_k_steps_later() -> None:
    delayed = ReachAroundEnv(ReachAroundConfig(action_delay_steps=(3, 3), max_target_speed=0.0))
    plain = ReachAroundEnv(ReachAroundConfig(max_target_speed=0.0))
    delayed.reset(seed=SEED)
    start_obs, _ = plain.reset(seed=SEED)
    target = start_obs[:2] + np.array([0.5, -0.3], dtype=np.float32)
    applied = []
    for _ in range(6):
        delayed.step(target)
        applied.append(delayed.data.ctrl.copy())
    assert np.allclose(applied[:3], start_obs[:2], atol=1e-6)  # the start position is held for 3 steps
    assert np.allclose(applied[3:], target)


def test_joint_targets_move_at_most_the_robot_velocity_limit_per_step() -> None:
    """A far action is approached at 3 rad/s (0.15 rad per 50 ms step), as the deploy rate limit would."""
    env = ReachAroundEnv(ReachAroundConfig())
    start_obs, _ = env.reset(seed=SEED)
    target = start_obs[:2] + np.array([0.5, -0.2], dtype=np.float32)
    targets = []
    for _ in range(5):
        env.step(target)
        targets.append(env.data.ctrl.copy())
    steps = np.diff(np.vstack([start_obs[:2], targets]), axis=0)
    np.testing.assert_allclose(steps[:3, 0], 0.15, atol=1e-6)  # shoulder: 0.5 rad takes 4 steps
    np.testing.assert_allclose(steps[:1, 1], -0.15, atol=1e-6)  # elbow: 0.2 rad takes 2 steps
    np.testing.assert_allclose(targets[-1], target, atol=1e-6)
    with pytest.raises(ValueError, match="task.max_target_speed"):
        ReachAroundEnv(ReachAroundConfig(max_target_speed=-1.0))


def test_action_delay_is_drawn_per_episode_from_the_seed() -> None:
    env = ReachAroundEnv(ReachAroundConfig(action_delay_steps=(0, 4)))
    delays = []
    for seed in range(12):
        env.reset(seed=seed)
        delays.append(env._action_delay)
    assert set(delays) <= set(range(5)) and len(set(delays)) > 1
    env.reset(seed=5)
    assert env._action_delay == delays[5]


@pytest.mark.parametrize(
    ("field", "value"),
    [("mass_scale", (2.0, 1.0)), ("friction_scale", (0.5,)), ("action_delay_steps", (-1, 2)), ("observation_noise", -0.1)],
)
def test_bad_ranges_name_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=f"task.{field}"):
        ReachAroundEnv(ReachAroundConfig(**{field: value}))


def test_ranges_come_from_config_overrides() -> None:
    task = build_task({"name": "reach_around", "friction_scale": [0.8, 1.2], "action_delay_steps": [1, 2]})
    env = task.make_env()
    env.reset(seed=SEED)
    assert env._action_delay in (1, 2)
    ratio = env.model.geom_friction[:, 0] / env.randomization.nominal["geom_friction"][:, 0]
    assert np.all((ratio >= 0.8) & (ratio <= 1.2)) and not np.allclose(ratio, 1.0)
