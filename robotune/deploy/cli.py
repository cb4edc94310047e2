"""`robotune deploy`: run a checkpoint's policy on a robot, over ROS 2 or on the task's simulator.

    robotune deploy checkpoint=runs/reach_around-diffusion-bc-seed0 robot=planar_arm transport=sim
    robotune deploy checkpoint=DIR robot=planar_arm transport=ros2 ros.domain_id=7 duration_s=60

With `transport=ros2` a robot driver must be running, e.g. the MuJoCo one:

    python -m robotune.deploy.ros.simulator_driver --checkpoint DIR --episodes 20 --mode lockstep

The last stdout line is a JSON summary (success rate when episodes are reported, safety counters,
timing). Everything a deployment needs comes from the checkpoint; the config only adds how to reach
the robot and how careful to be.
"""

from __future__ import annotations

import json
import time

import torch
from omegaconf import DictConfig, OmegaConf

from robotune.core.spec import RobotSpec, TaskSpec
from robotune.deploy.observation import JOINT_FIELDS, ArrayTopic
from robotune.deploy.runner import DeployError, PolicyRunner, RunnerConfig
from robotune.deploy.safety import SafetyConfig
from robotune.deploy.ros.topics import RosTopics


def resolve_robot(robot_config: DictConfig | dict, task: TaskSpec) -> RobotSpec:
    """The RobotSpec of the selected `robot` plugin, checked against the robot the task was trained for."""
    from robotune.core import registry
    from robotune.core.config import build_config
    from robotune.core.robot import check_deployable

    robot_class = registry.get("robot", robot_config["name"])
    robot = robot_class(build_config(robot_class.config_class, robot_config, "robot")).spec
    try:
        check_deployable(robot, task.robot, task.name)
    except ValueError as exc:
        raise DeployError(str(exc)) from None
    return robot


def default_observation_topics(task: TaskSpec, robot: RobotSpec) -> dict[str, ArrayTopic]:
    """One Float64MultiArray topic `/<key>` for each non-joint source in obs_names, fields in order."""
    topics: dict[str, list[str]] = {}
    for obs_name in task.obs_names:
        source, _, fld = obs_name.rpartition(".")
        if not (source in robot.joint_names and fld in JOINT_FIELDS):
            topics.setdefault(source, []).append(fld)
    return {key: ArrayTopic(key, f"/{key}", tuple(fields)) for key, fields in topics.items()}


def observation_topics(cfg: DictConfig, task: TaskSpec, robot: RobotSpec) -> dict[str, ArrayTopic]:
    if cfg.ros.observation_topics is None:
        return default_observation_topics(task, robot)
    return {k: ArrayTopic(k, v.topic, tuple(v.fields)) for k, v in cfg.ros.observation_topics.items()}


def runner_config(cfg: DictConfig, task: TaskSpec) -> RunnerConfig:
    return RunnerConfig(
        rate_hz=float(cfg.rate_hz or task.control_rate_hz),
        lead_ticks=cfg.lead_ticks,
        blend_steps=cfg.blend_steps,
        deterministic=cfg.deterministic,
        seed=cfg.seed,
        configure_timeout_s=cfg.configure_timeout_s,
        plan_on_tick=cfg.plan_on_tick,
        realtime_priority=cfg.realtime_priority,
        cpu_latency_us=cfg.cpu_latency_us,
        safety=SafetyConfig(**OmegaConf.to_container(cfg.safety)),
    )


def ros_topics(cfg: DictConfig, topics: dict[str, ArrayTopic]) -> RosTopics:
    ros = OmegaConf.to_container(cfg.ros)
    ros.pop("domain_id")
    ros["observation_topics"] = topics
    return RosTopics(**ros)


def deploy(cfg: DictConfig) -> dict:
    """Load the checkpoint, connect, run through the lifecycle, print and return a JSON summary."""
    from robotune.core.checkpoint import load_checkpoint
    from robotune.core.task import build_task

    torch.set_num_threads(cfg.torch_threads)
    checkpoint = load_checkpoint(cfg.checkpoint)
    task_spec = checkpoint.task_spec
    robot = resolve_robot(cfg.robot, task_spec)
    topics = observation_topics(cfg, task_spec, robot)
    config = runner_config(cfg, task_spec)
    summary: dict = {"checkpoint": str(checkpoint.path), "transport": cfg.transport, "robot": robot.name, "rate_hz": config.rate_hz}

    if cfg.transport == "sim":
        from robotune.deploy.stepped_transport import SteppedEnvTransport
        from robotune.deploy.task_env_robot import TaskEnvRobot

        task = build_task(checkpoint.config.task)
        sim = TaskEnvRobot(task.make_env(), task_spec, robot, seed=cfg.seed, episodes=cfg.episodes)
        runner = PolicyRunner(checkpoint.policy, task_spec, SteppedEnvTransport(sim), config, robot, topics)
        runner.configure()
        runner.activate()
        try:
            runner.run_stepped(max_ticks=cfg.episodes * (task_spec.max_episode_steps + 1), until=lambda: sim.finished)
        finally:
            stats = runner.stats()
            runner.shutdown()
        summary.update(sim.summary())
    elif cfg.transport == "ros2":
        from robotune.deploy.ros.transport import Ros2Transport

        transport = Ros2Transport(robot.joint_names, config.rate_hz, ros_topics(cfg, topics), domain_id=cfg.ros.domain_id,
                                  record_path=cfg.record)
        runner = PolicyRunner(checkpoint.policy, task_spec, transport, config, robot, topics)
        runner.configure()
        runner.activate()
        try:
            end = time.monotonic() + cfg.duration_s
            while time.monotonic() < end and not transport.finished.is_set():
                if cfg.episodes and len(transport.episode_results) >= cfg.episodes:
                    break
                runner.run_for(min(0.2, end - time.monotonic()))
            runner.deactivate()
        finally:
            stats = runner.stats()
            runner.shutdown()
        results = transport.episode_results
        if results:
            summary.update(
                episodes=len(results),
                successes=sum(bool(r["success"]) for r in results),
                success_rate=sum(bool(r["success"]) for r in results) / len(results),
            )
    else:
        raise DeployError(f"transport must be 'sim' or 'ros2', got '{cfg.transport}'")
    summary["runner"] = {k: v for k, v in stats.items() if k != "transport"}
    print(json.dumps(summary))
    return summary
