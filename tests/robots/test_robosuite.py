"""The robosuite tasks: spec against environment, seeding, the experts, the controllers, lazy import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from robotune.core import registry
from robotune.core.task import build_task
from robotune.training.demonstrations import record_demonstrations
from robotune.robots.robosuite.experts import NutAssemblySquareExpert, PickPlaceCanExpert, rotation_vector
from robotune.robots.robosuite.kinematics import ArmKinematics
from robotune.robots.robosuite.robot import JOINT_NAMES, Panda
from robotune.robots.robosuite.tasks import LiftTask


@pytest.fixture(scope="module")
def lift() -> LiftTask:
    return build_task({"name": "lift"})


@pytest.fixture(scope="module")
def lift_env(lift: LiftTask):
    env = lift.make_env()
    yield env
    env.close()


def test_the_three_tasks_and_the_panda_are_registered() -> None:
    for name in ("lift", "pick_place_can", "nut_assembly_square"):
        assert registry.get("task", name).plugin_name == name
    assert registry.get("robot", "panda") is Panda


def test_importing_the_plugins_does_not_import_robosuite() -> None:
    """Listing plugins must stay fast (robosuite takes seconds to import) and survive a broken robosuite."""
    code = (
        "import sys; from robotune.core import registry; registry.load_plugins(); "
        "assert registry.get('task', 'lift'); print('robosuite' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_missing_robosuite_is_reported_when_an_env_is_made(lift: LiftTask, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "robosuite", None)  # makes `import robosuite` raise ImportError
    with pytest.raises(RuntimeError, match="scripts/setup.sh installs it"):
        lift.make_env()


def test_panda_limits_come_from_robosuites_model(lift_env) -> None:
    spec = Panda().spec
    assert spec.joint_names == JOINT_NAMES and spec.command_interface == "position"
    model = lift_env.suite_env.sim.model._model
    for joint in spec.joints:
        assert (joint.lower, joint.upper) == tuple(model.joint(f"robot0_{joint.name}").range)
    # the gripper command is robosuite's: the last entry of the JOINT_POSITION action
    assert (spec.gripper.name, spec.gripper.lower, spec.gripper.upper) == ("gripper", -1.0, 1.0)


def test_spec_matches_the_environment(lift: LiftTask, lift_env) -> None:
    spec = lift.spec
    assert spec.obs_names[:7] == tuple(f"{j}.pos" for j in JOINT_NAMES)
    assert spec.obs_names[-7:] == ("cube.x", "cube.y", "cube.z", "cube.qx", "cube.qy", "cube.qz", "cube.qw")
    assert sum(spec.extra["obs_keys"].values()) == spec.obs_dim == lift_env.observation_space.shape[0]
    assert np.allclose(lift_env.action_space.low, spec.action_low)
    assert np.allclose(lift_env.action_space.high, spec.action_high)
    assert spec.robot is None  # OSC deltas are not joint commands

    obs, info = lift_env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (spec.obs_dim,) and info["is_success"] is False
    joint_pos = lift_env.suite_env.sim.data.qpos[:7]
    assert np.allclose(obs[:7], joint_pos, atol=1e-6)
    cube = lift_env.suite_env.sim.data.body_xpos[lift_env.suite_env.cube_body_id]
    assert np.allclose(obs[spec.obs_names.index("cube.x") :][:3], cube, atol=1e-6)
    _, reward, terminated, truncated, info = lift_env.step(np.zeros(spec.action_dim))
    assert isinstance(info["is_success"], bool) and reward == 0.0 and not (terminated or truncated)


def test_reset_with_a_seed_is_deterministic(lift_env) -> None:
    first, _ = lift_env.reset(seed=3)
    lift_env.step(np.full(7, 0.5))
    again, _ = lift_env.reset(seed=3)
    other, _ = lift_env.reset(seed=4)
    assert np.array_equal(first, again)
    assert not np.allclose(first[-7:], other[-7:])  # the cube was placed elsewhere


def test_the_lift_expert_lifts_the_cube(lift: LiftTask, lift_env) -> None:
    expert = lift.make_expert()
    obs, _ = lift_env.reset(seed=0)
    expert.reset(obs, np.random.default_rng(0))
    for step in range(80):
        obs, reward, terminated, truncated, info = lift_env.step(expert.act(obs))
        if terminated:
            break
    assert info["is_success"] and terminated and reward == 1.0
    assert step < 60  # the expert needs about 40 steps


def test_expert_noise_perturbs_actions_reproducibly(lift_env) -> None:
    obs, _ = lift_env.reset(seed=1)

    def first_action(noise: float, seed: int) -> np.ndarray:
        expert = build_task({"name": "lift", "expert_noise": noise}).make_expert()
        expert.reset(obs, np.random.default_rng(seed))
        return expert.act(obs)

    clean, noisy, noisy_again, other_seed = first_action(0.0, 0), first_action(0.3, 0), first_action(0.3, 0), first_action(0.3, 1)
    assert np.array_equal(noisy, noisy_again)
    assert not np.allclose(noisy[:6], clean[:6]) and not np.allclose(noisy[:6], other_seed[:6])
    assert noisy[6] == clean[6]  # the gripper command is left clean


def test_a_negative_expert_noise_is_refused() -> None:
    with pytest.raises(ValueError, match="expert_noise"):
        build_task({"name": "lift", "expert_noise": -0.1}).make_expert()


def test_joint_position_controller_takes_absolute_targets() -> None:
    task = build_task({"name": "lift", "controller": "JOINT_POSITION"})
    spec = task.spec
    assert spec.robot is not None and spec.robot.joint_names == JOINT_NAMES and spec.robot.gripper.name == "gripper"
    assert spec.action_dim == 8 and spec.extra["gripper_action_index"] == 7
    env = task.make_env()
    try:
        assert np.allclose(env.action_space.low, [*spec.robot.lower, spec.robot.gripper.lower])
        assert np.allclose(env.action_space.high, [*spec.robot.upper, spec.robot.gripper.upper])
        obs, _ = env.reset(seed=0)
        target = obs[:7].astype(np.float64) + np.array([0.2, -0.1, 0.0, 0.1, 0.0, 0.1, -0.2])
        for _ in range(30):
            obs, *_ = env.step(np.r_[target, -1.0])
        assert np.abs(obs[:7] - target).max() < 0.03  # rad: the joints went to the commanded positions
    finally:
        env.close()


def test_arm_kinematics_match_the_scene(lift_env) -> None:
    """The joint-position expert's model gives the observed end-effector pose, and a Jacobian that predicts motion."""
    kinematics = ArmKinematics(lift_env)
    obs, _ = lift_env.reset(seed=2)
    joints = obs[:7].astype(np.float64)
    position, rotation = kinematics.site_pose(joints)
    assert np.allclose(position, obs[14:17], atol=1e-5)  # eef.x, eef.y, eef.z
    joint_change = np.array([1.0, -2.0, 1.0, 2.0, -1.0, 2.0, 1.0]) * 1e-3  # rad: small, so first order holds
    moved, moved_rotation = kinematics.site_pose(joints + joint_change)
    jacobian = kinematics.jacobian(joints)
    assert np.allclose(jacobian[:3] @ joint_change, moved - position, atol=1e-5)
    assert np.allclose(jacobian[3:] @ joint_change, rotation_vector(moved_rotation @ rotation.T), atol=1e-5)
    step = kinematics.joint_step(joints, np.array([0.01, 0.0, -0.01, 0.0, 0.0, 0.0]))
    assert np.allclose(kinematics.site_pose(joints + step)[0] - position, [0.01, 0.0, -0.01], atol=1e-3)


def test_recorded_joint_position_demonstrations_succeed_and_replay() -> None:
    """The recorder runs the joint-position expert; its recorded actions, replayed open loop, lift the cube again."""
    task = build_task({"name": "lift", "controller": "JOINT_POSITION", "max_episode_steps": 80})
    dataset = record_demonstrations(task, num_episodes=1, seed=0)
    actions, observations = dataset.episode(0).action, dataset.episode(0).obs
    assert actions.shape[1] == 8 and np.all(actions >= task.spec.action_low) and np.all(actions <= task.spec.action_high)
    assert set(np.unique(actions[:, 7])) == {-1.0, 1.0}  # the hand opened, then closed on the cube
    env = task.make_env()
    try:
        obs, _ = env.reset(seed=0)
        for step, action in enumerate(actions):
            assert np.allclose(obs, observations[step], atol=1e-5), f"replay left the recording at step {step}"
            obs, _, terminated, _, info = env.step(action)
    finally:
        env.close()
    assert info["is_success"] and terminated


def test_an_unknown_controller_is_named() -> None:
    with pytest.raises(ValueError, match="task.controller"):
        build_task({"name": "lift", "controller": "OSC_POSITION"}).make_env()


@pytest.mark.slow
def test_expert_constants_match_robosuite() -> None:
    """The can's goal and the square peg are robosuite constants the experts copy: check them at the source."""
    can_env = build_task({"name": "pick_place_can"}).make_env()
    try:
        can_id = can_env.suite_env.object_to_id["can"]
        assert np.allclose(can_env.suite_env.target_bin_placements[can_id, :2], PickPlaceCanExpert.TARGET_XY)
    finally:
        can_env.close()
    square_env = build_task({"name": "nut_assembly_square"}).make_env()
    try:
        square_env.reset(seed=0)
        suite = square_env.suite_env
        assert np.allclose(suite.sim.data.body_xpos[suite.peg1_body_id][:2], NutAssemblySquareExpert.PEG_XY)
    finally:
        square_env.close()


def test_render_returns_agentview_frames(lift: LiftTask) -> None:
    env = lift.make_env(render_mode="rgb_array")
    try:
        env.reset(seed=0)
        first = env.render()
        for _ in range(5):
            env.step(np.r_[0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0])
        later = env.render()
    finally:
        env.close()
    assert first.shape == (240, 320, 3) and first.dtype == np.uint8
    assert first.std() > 10 and not np.array_equal(first, later)  # a scene, and the arm moved


@pytest.mark.slow
@pytest.mark.parametrize(("task_name", "max_steps"), [("pick_place_can", 200), ("nut_assembly_square", 260)])
def test_the_can_and_square_experts_complete_an_episode(task_name: str, max_steps: int) -> None:
    task = build_task({"name": task_name})
    env, expert = task.make_env(), task.make_expert()
    try:
        obs, _ = env.reset(seed=0)
        expert.reset(obs, np.random.default_rng(0))
        for _ in range(max_steps):
            obs, reward, terminated, _, info = env.step(expert.act(obs))
            if terminated:
                break
    finally:
        env.close()
    assert info["is_success"] and reward == 1.0
