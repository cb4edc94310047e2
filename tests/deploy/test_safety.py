"""Safety layer rules, without ROS: limits, rate limit, ramp, tracking bound, watchdog, NaN hold and latch, e-stop, warm-up."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from robotune.core.spec import JointSpec
from robotune.deploy.safety import SafetyConfig, SafetyLayer, Verdict, is_within_limits
from tests.deploy.fakes import ARM

RATE = 20.0
MAX_STEP = 3.0 / RATE  # max_velocity 3 rad/s at 20 Hz
OBS = np.zeros(6)


def layer(robot=ARM, **overrides) -> SafetyLayer:
    config = SafetyConfig(**{"warmup_ticks": 0, "ramp_speed": None, **overrides})
    safety = SafetyLayer(robot, RATE, config)
    safety.anchor(np.zeros(2))
    return safety


def test_targets_are_clipped_to_joint_limits_and_rate_limited():
    safety = layer()
    for _ in range(200):  # far beyond the limit: walks there at max_step per tick, then stops at the limit
        command, verdict = safety.command(np.array([10.0, -10.0]), OBS, 0.0)
        assert verdict is Verdict.POLICY
        assert is_within_limits(command, ARM)
    np.testing.assert_allclose(command, [2.0, -2.5])
    assert safety.stats.clipped_ticks == 200


def test_rate_limit_bounds_each_tick_delta():
    safety = layer()
    previous = np.zeros(2)
    for target in ([1.0, 0.0], [1.0, 0.0], [-1.0, 0.01], [0.0, 0.0]):
        command, _ = safety.command(np.array(target), OBS, 0.0)
        assert np.all(np.abs(command - previous) <= MAX_STEP + 1e-12)
        previous = command
    np.testing.assert_allclose(safety.command(np.array([0.01, 0.0]), OBS, 0.0)[0], [0.01, 0.0])


def test_stale_observation_holds_last_target_and_recovers():
    safety = layer()
    moved, _ = safety.command(np.array([0.1, 0.1]), OBS, 0.0)
    held, verdict = safety.command(np.array([1.0, 1.0]), OBS, 1.5 / RATE)  # older than one period
    assert verdict is Verdict.STALE
    np.testing.assert_array_equal(held, moved)
    assert safety.command(np.array([0.1, 0.1]), None, 0.0)[1] is Verdict.STALE  # no observation at all
    assert safety.command(np.array([0.2, 0.1]), OBS, 0.0)[1] is Verdict.POLICY  # a dropout does not latch
    assert safety.stats.stale_ticks == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_action_latches_a_hold(bad):
    safety = layer()
    moved, _ = safety.command(np.array([0.1, 0.1]), OBS, 0.0)
    held, verdict = safety.command(np.array([bad, 0.0]), OBS, 0.0)
    assert verdict is Verdict.FAULT
    np.testing.assert_array_equal(held, moved)
    for _ in range(5):  # latched: a good action afterwards changes nothing
        command, verdict = safety.command(np.array([0.5, 0.5]), OBS, 0.0)
        assert verdict is Verdict.FAULT and np.array_equal(command, moved)
    safety.reset(np.array([0.1, 0.1]))
    assert safety.command(np.array([0.15, 0.1]), OBS, 0.0)[1] is Verdict.POLICY


def test_nonfinite_observation_holds_at_once_and_latches_only_when_it_persists():
    safety = layer(nonfinite_latch_ticks=3, nonfinite_latch_s=None)
    moved, _ = safety.command(np.array([0.1, 0.1]), OBS, 0.0)
    bad = OBS.copy()
    bad[3] = np.nan
    for _ in range(2):  # a glitch: held, not latched
        command, verdict = safety.command(np.array([1.0, 1.0]), bad, 0.0)
        assert verdict is Verdict.NONFINITE and np.array_equal(command, moved) and "[3]" in safety.hold_reason
    assert safety.command(np.array([0.2, 0.1]), OBS, 0.0)[1] is Verdict.POLICY  # a good one resets the count
    verdicts = [safety.command(np.array([1.0, 1.0]), bad, 0.0)[1] for _ in range(3)]
    assert verdicts == [Verdict.NONFINITE, Verdict.NONFINITE, Verdict.FAULT] and "[3]" in safety.latch_reason
    assert safety.command(np.array([0.2, 0.1]), OBS, 0.0)[1] is Verdict.FAULT  # latched now


def test_nonfinite_latch_time_is_converted_to_ticks_and_the_smaller_bound_wins():
    assert SafetyLayer(ARM, 50.0, SafetyConfig(nonfinite_latch_s=0.2)).nonfinite_latch_after == 10
    assert SafetyLayer(ARM, 50.0, SafetyConfig(nonfinite_latch_ticks=4, nonfinite_latch_s=0.2)).nonfinite_latch_after == 4
    assert SafetyLayer(ARM, 50.0, SafetyConfig(nonfinite_latch_ticks=1)).nonfinite_latch_after == 1  # latch at once
    assert SafetyLayer(ARM, 50.0, SafetyConfig(nonfinite_latch_ticks=None, nonfinite_latch_s=None)).nonfinite_latch_after is None


def test_wrong_action_shape_is_a_fault():
    safety = layer()
    assert safety.command(np.array([0.1, 0.1, 0.1]), OBS, 0.0)[1] is Verdict.FAULT


def test_ramp_moves_to_the_frozen_first_command_at_the_ramp_speed_then_hands_over():
    ramp_speed = 0.4  # rad/s: 0.02 rad per tick at 20 Hz
    safety = layer(ramp_speed=ramp_speed)
    previous, commands = np.zeros(2), []
    target = np.array([0.1, -0.05])
    for i in range(8):
        # the policy's later actions differ: the ramp keeps going to the first one
        command, verdict = safety.command(target if i == 0 else np.array([1.0, 1.0]), OBS, 0.0)
        commands.append((command, verdict))
        assert np.all(np.abs(command - previous) <= (ramp_speed / RATE if verdict is Verdict.RAMP else MAX_STEP) + 1e-12)
        previous = command
        if verdict is Verdict.POLICY:
            break
    verdicts = [v for _, v in commands]
    assert verdicts == [Verdict.RAMP] * 5 + [Verdict.POLICY]  # 0.1 rad at 0.02 rad per tick
    np.testing.assert_allclose(commands[4][0], target)
    np.testing.assert_allclose(commands[5][0], target + MAX_STEP)  # then the policy, at the rate limit
    assert safety.stats.ramp_ticks == 5


def test_reset_rearms_through_the_ramp():
    safety = layer(ramp_speed=0.4)
    safety.trigger_estop("stop")
    assert safety.command(np.array([0.5, 0.5]), OBS, 0.0)[1] is Verdict.ESTOP
    safety.reset(np.array([0.2, 0.2]))
    command, verdict = safety.command(np.array([0.5, 0.5]), OBS, 0.0)
    assert verdict is Verdict.RAMP and np.allclose(command, [0.22, 0.22])


def test_tracking_bound_holds_and_names_the_joint():
    safety = layer(tracking_bound=0.1)
    moved, _ = safety.command(np.array([0.05, 0.0]), OBS, 0.0, measured=np.zeros(2))
    command, verdict = safety.command(np.array([0.1, 0.0]), OBS, 0.0, measured=np.array([0.05, -0.2]))  # elbow lags 0.2
    assert verdict is Verdict.TRACKING and np.array_equal(command, moved)
    assert "'elbow'" in safety.hold_reason and "tracking_bound 0.1" in safety.hold_reason
    assert safety.command(np.array([0.1, 0.0]), OBS, 0.0, measured=np.array([0.05, 0.0]))[1] is Verdict.POLICY
    assert safety.stats.tracking_ticks == 1


@pytest.mark.parametrize("bad", [{"after_latch": "drop"}, {"ramp_speed": 0.0}, {"tracking_bound": -1.0}])
def test_bad_settings_name_the_field(bad):
    with pytest.raises(ValueError, match=f"safety.{next(iter(bad))}"):
        SafetyConfig(**bad)


def test_estop_latches_over_everything():
    safety = layer()
    moved, _ = safety.command(np.array([0.1, 0.1]), OBS, 0.0)
    safety.trigger_estop("operator pressed stop")
    for _ in range(3):
        command, verdict = safety.command(np.array([1.0, 1.0]), OBS, 0.0)
        assert verdict is Verdict.ESTOP and np.array_equal(command, moved)
    assert safety.latch_reason == "operator pressed stop"


def test_warmup_holds_for_the_configured_ticks():
    safety = SafetyLayer(ARM, RATE, SafetyConfig(warmup_ticks=3, ramp_speed=None))
    safety.anchor(np.array([0.3, -0.3]))
    verdicts = [safety.command(np.array([1.0, 1.0]), OBS, 0.0)[1] for _ in range(4)]
    assert verdicts == [Verdict.WARMUP] * 3 + [Verdict.POLICY]


def test_anchor_outside_limits_starts_from_the_nearest_limit_and_margin_is_respected():
    safety = SafetyLayer(ARM, RATE, SafetyConfig(warmup_ticks=0, position_margin=0.1, ramp_speed=None))
    safety.anchor(np.array([5.0, 0.0]))
    command, _ = safety.command(np.array([5.0, 0.0]), OBS, 0.0)
    np.testing.assert_allclose(command, [1.9, 0.0])
    with pytest.raises(ValueError, match="finite joint positions"):
        safety.anchor(np.array([np.nan, 0.0]))


def test_velocity_interface_holds_with_zeros():
    from dataclasses import replace

    robot = replace(ARM, command_interface="velocity")
    safety = SafetyLayer(robot, RATE, SafetyConfig(warmup_ticks=0))
    safety.anchor(np.zeros(2))
    command, _ = safety.command(np.array([10.0, -1.0]), OBS, 0.0)
    np.testing.assert_allclose(command, [3.0, -1.0])
    command, verdict = safety.command(np.array([1.0, 1.0]), OBS, 1.0)
    assert verdict is Verdict.STALE and np.array_equal(command, np.zeros(2))


# -- a gripper: one commanded value after the joints ---------------------------------------------
GRIPPER_ARM = replace(ARM, gripper=JointSpec("gripper", -1.0, 1.0, max_velocity=10.0))
GRIPPER_STEP = 10.0 / RATE  # command units per tick


def test_the_gripper_command_is_clipped_rate_limited_and_sent_after_the_joints():
    safety = layer(GRIPPER_ARM)
    commands = [safety.command(np.array([0.0, 0.0, 5.0]), OBS, 0.0)[0] for _ in range(6)]
    assert [c.shape for c in commands] == [(3,)] * 6
    # from idle 0 towards the clipped 1.0 at GRIPPER_STEP per tick, then held at the limit
    np.testing.assert_allclose([c[2] for c in commands], [0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert all(is_within_limits(c, GRIPPER_ARM) for c in commands)
    assert safety.stats.gripper_clipped_ticks == 6 and safety.stats.gripper_rate_limited_ticks == 1
    assert safety.stats.clipped_ticks == 0  # the joints' counters are their own


def test_holds_repeat_the_last_gripper_command_and_never_open_the_hand():
    safety = layer(GRIPPER_ARM)
    for _ in range(2):
        safety.command(np.array([0.1, 0.0, 1.0]), OBS, 0.0)
    stale, verdict = safety.command(np.array([0.1, 0.0, -1.0]), None, float("inf"))
    assert verdict is Verdict.STALE and stale[2] == 1.0
    tracking = layer(GRIPPER_ARM, tracking_bound=0.05)
    tracking.command(np.array([0.0, 0.0, 1.0]), OBS, 0.0, measured=np.zeros(2))
    tracking.command(np.array([0.0, 0.0, 1.0]), OBS, 0.0, measured=np.zeros(2))
    held, verdict = tracking.command(np.array([0.1, 0.0, -1.0]), OBS, 0.0, measured=np.zeros(2))
    assert verdict is Verdict.TRACKING and held[2] == 1.0  # the arm's tracking hold keeps the hand closed too


def test_the_gripper_is_idle_until_the_policy_and_follows_the_first_command_through_the_ramp():
    safety = SafetyLayer(GRIPPER_ARM, RATE, SafetyConfig(warmup_ticks=1, ramp_speed=0.5))
    safety.anchor(np.zeros(2))
    warmup, verdict = safety.command(np.array([0.2, 0.0, -1.0]), OBS, 0.0)
    assert verdict is Verdict.WARMUP and warmup[2] == 0.0  # the middle of the gripper's range
    ramp = [safety.command(np.array([0.2, 0.0, 1.0 if tick else -1.0]), OBS, 0.0)[0] for tick in range(3)]
    assert safety.ramping  # 0.2 rad at 0.025 rad per tick is not reached yet
    np.testing.assert_allclose([c[2] for c in ramp], [-0.5, -1.0, -1.0])  # the frozen first command's gripper value


def test_a_non_finite_gripper_action_latches_a_fault():
    safety = layer(GRIPPER_ARM)
    command, verdict = safety.command(np.array([0.0, 0.0, np.nan]), OBS, 0.0)
    assert verdict is Verdict.FAULT and safety.latched is Verdict.FAULT and np.isfinite(command).all()
    assert safety.command(np.array([0.0, 0.0]), OBS, 0.0)[1] is Verdict.FAULT  # still latched


def test_an_action_without_the_gripper_value_is_a_fault_for_a_robot_with_one():
    safety = layer(GRIPPER_ARM)
    assert safety.command(np.array([0.0, 0.0]), OBS, 0.0)[1] is Verdict.FAULT
    assert "invalid action" in safety.latch_reason
