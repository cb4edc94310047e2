"""`robotune deploy`: run a checkpoint's policy on a robot, over ROS 2 or on the task's simulator.

    robotune deploy checkpoint=runs/reach_around-diffusion-bc-seed0 robot=planar_arm transport=sim
    robotune deploy checkpoint=DIR robot=planar_arm transport=ros2 ros.domain_id=7 duration_s=60
    robotune deploy checkpoint=DIR robot_description=my_arm.yaml transport=ros2 mode=shadow

With `transport=ros2` a robot driver must be running, e.g. the MuJoCo one:

    python -m robotune.deploy.ros.simulator_driver --checkpoint DIR --episodes 20 --mode lockstep

What the operator sees: startup stages with the seconds since launch, then one log line (stderr)
for every lifecycle change, hold, latch, e-stop, reset and recovery, and on an interactive terminal
a live one-line status. The last stdout line is a JSON summary (success rate when episodes are
reported, safety counters, the transport's diagnostics, timing, `first_command_s`). The exit code
says how the run ended (`EXIT_CODES`); errors are one line on stderr, not a traceback.

Startup is staged so that the ROS 2 side (rclpy import, DDS discovery, the first joint states)
runs in a thread while torch is imported and the policy loads, and only the modules a stage needs
are imported: this module imports no torch, and `robotune.cli` imports only the robot plugins.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from robotune.configs import import_builtin_plugins
from robotune.core.checkpoint_paths import resolve_checkpoint
from robotune.core.spec import RobotSpec, TaskSpec
from robotune.deploy import DeployError
from robotune.deploy.observation import JOINT_FIELDS, ArrayTopic
from robotune.deploy.safety import SafetyConfig
from robotune.processing.pipeline import ObservationProcessors, task_spec_from_meta

if TYPE_CHECKING:  # the runner imports torch, which the robot side does not wait for
    from robotune.deploy.runner import RunnerConfig

# A clean end, an error before or while running (nothing moved, or the loop failed), an e-stop
# latched at the end, a fault latched at the end.
EXIT_CODES = {"clean": 0, "error": 2, "estop": 3, "fault": 4}
log = logging.getLogger("robotune.deploy")


def seconds_since_launch() -> float:
    """Seconds since this process started (Linux /proc; 10 ms resolution), else since this module loaded."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _MODULE_LOADED


_MODULE_LOADED = time.monotonic()


class _LaunchClock(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.since_launch = seconds_since_launch()
        return True


def configure_logging(stream=None) -> logging.Handler:
    """Log lines on stderr as `[deploy  1.23s] LEVEL message`, the seconds counted from launch."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.addFilter(_LaunchClock())
    clear_status_line = "\r\033[K" if stream.isatty() else ""  # a log line replaces the live status line
    handler.setFormatter(logging.Formatter(clear_status_line + "[deploy %(since_launch)6.2fs] %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    log.disabled = False  # Hydra's logging setup disables loggers that existed before it ran
    return handler


class StatusLine:
    """A live one-line status on an interactive terminal, redrawn a few times a second; log lines clear it first."""

    def __init__(self, runner, stream=None, period_s: float = 0.25) -> None:
        self.runner = runner
        self.stream = stream or sys.stderr
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw, name="deploy-status", daemon=True)

    def __enter__(self) -> StatusLine:
        self._thread.start()
        return self

    def _draw(self) -> None:
        while not self._stop.wait(self.period_s):
            self.stream.write("\r\033[K" + self.runner.status_line()[:200])
            self.stream.flush()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.stream.write("\r\033[K")
        self.stream.flush()


def check_deployable(robot: RobotSpec, trained_for: RobotSpec | None, task_name: str) -> None:
    """Raise ValueError, naming both sides, unless `robot` can run a policy trained for `trained_for`."""
    if trained_for is None:
        raise ValueError(f"task '{task_name}' has no RobotSpec, so its policies cannot be deployed")
    if set(robot.joint_names) != set(trained_for.joint_names):
        missing = sorted(set(trained_for.joint_names) - set(robot.joint_names))
        extra = sorted(set(robot.joint_names) - set(trained_for.joint_names))
        raise ValueError(
            f"robot '{robot.name}' has joints {list(robot.joint_names)}, but task '{task_name}' was trained for "
            f"robot '{trained_for.name}' with joints {list(trained_for.joint_names)} (missing {missing}, "
            f"not trained for {extra}; the order may differ, the names may not)"
        )
    trained_gripper = trained_for.gripper.name if trained_for.gripper else None
    if (robot.gripper.name if robot.gripper else None) != trained_gripper:
        raise ValueError(
            f"robot '{robot.name}' has " + (f"gripper '{robot.gripper.name}'" if robot.gripper else "no gripper")
            + f", but task '{task_name}' was trained for robot '{trained_for.name}' with "
            + (f"gripper '{trained_gripper}'" if trained_gripper else "no gripper")
        )
    if robot.command_interface != trained_for.command_interface:
        raise ValueError(
            f"robot '{robot.name}' takes {robot.command_interface} commands, but task '{task_name}' was trained "
            f"for {trained_for.command_interface} commands"
        )


def resolve_robot(robot_config: DictConfig | dict, task: TaskSpec, description: str | None = None
                  ) -> tuple[RobotSpec, dict[str, str]]:
    """(robot, topic overrides) of the `robot` plugin, or of a YAML/URDF `description` file, checked
    against the robot the task was trained for (same joint names, any order)."""
    if description:
        from robotune.deploy.robot_description import load_robot_description

        robot, topics = load_robot_description(description, task)
    else:
        from robotune.core import registry
        from robotune.core.config import build_config

        robot_class = registry.get("robot", robot_config["name"])
        plugin = robot_class(build_config(robot_class.config_class, robot_config, "robot"))
        robot, topics = plugin.spec, dict(plugin.topics)
    try:
        check_deployable(robot, task.robot, task.name)
    except ValueError as exc:
        raise DeployError(str(exc)) from None
    return robot, topics


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


def control_rate_hz(cfg: DictConfig, task: TaskSpec) -> float:
    return float(cfg.rate_hz or task.control_rate_hz)


def runner_config(cfg: DictConfig, task: TaskSpec) -> RunnerConfig:
    from robotune.deploy.runner import RunnerConfig

    return RunnerConfig(
        rate_hz=control_rate_hz(cfg, task),
        lead_ticks=cfg.lead_ticks,
        blend_steps=cfg.blend_steps,
        deterministic=cfg.deterministic,
        seed=cfg.seed,
        configure_timeout_s=cfg.configure_timeout_s,
        subscriber_timeout_s=cfg.subscriber_timeout_s,
        ood_warn_norm=cfg.ood_warn_norm,
        shadow=cfg.mode == "shadow",
        plan_on_tick=cfg.plan_on_tick,
        realtime_priority=cfg.realtime_priority,
        cpu_latency_us=cfg.cpu_latency_us,
        safety=SafetyConfig(**OmegaConf.to_container(cfg.safety)),
    )


def ros_topics(cfg: DictConfig, topics: dict[str, ArrayTopic], robot_topics: dict[str, str]):
    """The RosTopics of the config's `ros` section, with the robot description's topics on top."""
    from robotune.deploy.ros.topics import RosTopics

    ros = OmegaConf.to_container(cfg.ros)
    ros.pop("domain_id")
    ros.update(robot_topics)
    ros["observation_topics"] = topics
    return RosTopics(**ros)


def read_meta(checkpoint_dir: Path) -> dict:
    """A checkpoint's meta.json alone (task spec, plugin names), so the robot side can start before the weights load."""
    return json.loads((checkpoint_dir / "meta.json").read_text())


def deploy(cfg: DictConfig) -> dict:
    """Run a deployment; print the JSON summary and exit with the code for how it ended (EXIT_CODES)."""
    configure_logging()
    log.info("robotune deploy: transport=%s mode=%s", cfg.transport, cfg.mode)
    try:
        summary = run_deployment(cfg)
    except Exception as exc:  # noqa: BLE001 - the operator gets one line; ROBOTUNE_DEBUG=1 shows the traceback
        if os.environ.get("ROBOTUNE_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"robotune deploy: error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CODES["error"])
    print(json.dumps(summary), flush=True)
    code = EXIT_CODES[summary["outcome"]]
    if code:
        sys.exit(code)
    return summary


def run_deployment(cfg: DictConfig) -> dict:
    """Staged startup, the run, and its summary (`outcome`: clean, estop or fault).

    The robot side comes first, from the checkpoint's meta.json alone: the ROS 2 transport starts
    in a thread before torch is imported, so that DDS discovery, which took from 0.02 to 2.4 s to
    match a running driver here, happens while torch and the policy load.
    """
    if cfg.transport not in ("sim", "ros2"):
        raise DeployError(f"transport must be 'sim' or 'ros2', got '{cfg.transport}'")
    if cfg.mode not in ("control", "shadow"):
        raise DeployError(f"mode must be 'control' or 'shadow', got '{cfg.mode}'")
    checkpoint_dir = resolve_checkpoint(cfg.checkpoint)
    meta = read_meta(checkpoint_dir)
    task_spec = task_spec_from_meta(meta)
    robot, robot_topics = resolve_robot(cfg.robot, task_spec, cfg.robot_description)
    topics = observation_topics(cfg, task_spec, robot)
    rate_hz = control_rate_hz(cfg, task_spec)
    log.info("robot '%s': joints %s, commands in order %s%s", robot.name, list(robot.joint_names), list(robot.command_order),
             f", then gripper '{robot.gripper.name}'" if robot.gripper else "")
    summary: dict = {"checkpoint": str(checkpoint_dir), "transport": cfg.transport, "mode": cfg.mode,
                     "robot": robot.name, "rate_hz": rate_hz}
    starting = None
    if cfg.transport == "ros2":
        starting = start_ros_transport_in_background(cfg, robot, rate_hz, ros_topics(cfg, topics, robot_topics))
    try:
        log.info("importing torch and the policy runtime%s", " (ROS 2 starts meanwhile)" if starting else "")
        import torch

        from robotune.core.checkpoint import load_checkpoint
        from robotune.deploy.runner import PolicyRunner

        torch.set_num_threads(cfg.torch_threads)
        config = runner_config(cfg, task_spec)
        log.info("loading the policy from %s", checkpoint_dir)
        import_builtin_plugins("policy", meta.get("plugins", {}).get("policy", {}).get("name", ""))  # not every plugin
        checkpoint = load_checkpoint(checkpoint_dir)
        log.info("policy loaded: %s", type(checkpoint.policy).__name__)
    except BaseException:
        if starting is not None:
            with contextlib.suppress(Exception):
                starting.result().close()
        raise
    if cfg.transport == "sim":
        from robotune.core.task import build_task
        from robotune.deploy.stepped_transport import SteppedEnvTransport
        from robotune.deploy.task_env_robot import TaskEnvRobot

        import_builtin_plugins("task", checkpoint.config.task.name)
        task = build_task(checkpoint.config.task)
        sim = TaskEnvRobot(task.make_env(), task_spec, task_spec.robot, seed=cfg.seed, episodes=cfg.episodes)
        runner = PolicyRunner(checkpoint.policy, task_spec, SteppedEnvTransport(sim), config, robot, topics,
                              ObservationProcessors.from_meta(checkpoint.meta))
        try:
            runner.configure()
            runner.activate()
            runner.run_stepped(max_ticks=cfg.episodes * (task_spec.max_episode_steps + 1), until=lambda: sim.finished)
        finally:
            stats = runner.stats()
            runner.shutdown()
        summary.update(sim.summary())
    else:
        transport = starting.result()
        try:
            runner = PolicyRunner(checkpoint.policy, task_spec, transport, config, robot, topics,
                                  ObservationProcessors.from_meta(checkpoint.meta))
        except BaseException:
            transport.close()
            raise
        try:
            runner.configure()
            runner.activate()
            with StatusLine(runner) if cfg.status_line and sys.stderr.isatty() else contextlib.nullcontext():
                run_until_done(runner, transport, cfg)
            runner.deactivate()
        finally:
            stats = runner.stats()
            runner.shutdown()
        summary.update(episode_summary(transport.episode_results))
    if runner.first_command_at is not None:
        summary["first_command_s"] = round(seconds_since_launch() - (time.perf_counter() - runner.first_command_at), 3)
    summary["outcome"] = runner.outcome
    summary["runner"] = stats
    log.info("finished: %s after %d ticks", runner.outcome, stats["ticks"])
    return summary


class _BackgroundStart:
    """The result of a function run in a thread; `result()` joins and re-raises its error."""

    def __init__(self, function) -> None:
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(function,), name="ros-startup", daemon=True)
        self._thread.start()

    def _run(self, function) -> None:
        try:
            self._value = function()
        except BaseException as exc:  # noqa: BLE001 - re-raised in result()
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def start_ros_transport_in_background(cfg: DictConfig, robot: RobotSpec, rate_hz: float, topics) -> _BackgroundStart:
    """Import rclpy, create the node and its subscriptions in a thread: discovery and the first joint
    states then arrive while the policy loads (DDS runs in its own threads, outside the GIL)."""

    def start():
        from robotune.deploy.ros.transport import Ros2Transport

        transport = Ros2Transport(robot.command_order, rate_hz, topics, domain_id=cfg.ros.domain_id, record_path=cfg.record,
                                  shadow=cfg.mode == "shadow", gripper=robot.gripper.name if robot.gripper else None)
        log.info("connecting to ROS 2 (domain %s): %s in, %s out", cfg.ros.domain_id or os.environ.get("ROS_DOMAIN_ID", 0),
                 topics.joint_states, " and ".join(transport.command_topics))
        transport.start()
        return transport

    return _BackgroundStart(start)


def run_until_done(runner, transport, cfg: DictConfig) -> None:
    """Until duration_s, the simulator's "finished" event or `episodes` results (bounded)."""
    end = time.monotonic() + cfg.duration_s
    while time.monotonic() < end and not transport.finished.is_set():
        if cfg.episodes and len(transport.episode_results) >= cfg.episodes:
            break
        runner.run_for(min(0.2, end - time.monotonic()))


def episode_summary(results: list[dict]) -> dict:
    if not results:
        return {}
    successes = sum(bool(r["success"]) for r in results)
    return {"episodes": len(results), "successes": successes, "success_rate": successes / len(results)}
