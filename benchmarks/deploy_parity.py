"""Does a checkpoint succeed as often over ROS 2 as in direct evaluation?

    python benchmarks/deploy_parity.py --checkpoint runs/reach_around-diffusion-bc-seed0 --episodes 20

Runs the same seeded episodes three ways and prints their success rates (last stdout line, JSON):
  direct  robotune's evaluation harness (ChunkController, no deploy code)
  sim     the deploy runner, planner and safety layer stepping MuJoCo directly (transport=sim)
  ros2    the deploy runner over real ROS 2 (rclpy, Fast DDS) driving the MuJoCo simulator node
          (`robotune.deploy.ros.simulator_driver --mode lockstep`) in another process

Lockstep makes the ROS 2 run faster than real time at the same per-step semantics: the simulator
advances one 50 ms control step per command computed from its latest state, and the runner ticks
at --rate-hz (default 100 Hz, 5x real time). The runner uses `--lead-ticks` control periods of
inference budget (1 by default: each chunk is planned one tick ahead from a one-tick-older
observation), the rate limiter and all other safety rules, so differences from `direct` are
the deployment's, not the transport's. DDS runs inside a private network namespace (the script
re-executes itself under `unshare -n`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from robotune.deploy import netns

REPO = Path(__file__).resolve().parents[1]
PYTHONPATH = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))


def load(checkpoint_dir: str):
    from robotune.core.checkpoint import load_checkpoint
    from robotune.core.task import build_task

    checkpoint = load_checkpoint(checkpoint_dir)
    return checkpoint, build_task(checkpoint.config.task)


def runner_config(args, rate_hz: float, control_rate_hz: float):
    from robotune.deploy.runner import RunnerConfig
    from robotune.deploy.safety import SafetyConfig

    # Lockstep: the next state arrives about one runner period after a command, so allow 3 periods.
    # Each command advances the robot one control period of the task, not one runner period: scale
    # the rate limiter's per-tick step (max_velocity * velocity_scale / rate_hz) and the activation
    # ramp's (ramp_speed / rate_hz) to the robot's time.
    robot_time = rate_hz / control_rate_hz
    return RunnerConfig(rate_hz=rate_hz, lead_ticks=args.lead_ticks, blend_steps=args.blend_steps, configure_timeout_s=60.0,
                        safety=SafetyConfig(warmup_ticks=0, obs_timeout_s=3.0 / rate_hz, velocity_scale=robot_time,
                                            ramp_speed=SafetyConfig().ramp_speed * robot_time))


def run_direct(args) -> dict:
    from robotune.rollout.evaluation import evaluate

    checkpoint, task = load(args.checkpoint)
    return evaluate(checkpoint.policy, task, episodes=args.episodes, seed=args.seed, num_envs=10).summary()


def run_sim(args) -> dict:
    from robotune.deploy.cli import default_observation_topics
    from robotune.deploy.runner import PolicyRunner
    from robotune.deploy.stepped_transport import SteppedEnvTransport
    from robotune.deploy.task_env_robot import TaskEnvRobot

    checkpoint, task = load(args.checkpoint)
    spec = checkpoint.task_spec
    sim = TaskEnvRobot(task.make_env(), spec, spec.robot, seed=args.seed, episodes=args.episodes)
    runner = PolicyRunner(checkpoint.policy, spec, SteppedEnvTransport(sim),
                          runner_config(args, spec.control_rate_hz, spec.control_rate_hz),
                          observation_topics=default_observation_topics(spec, spec.robot))
    runner.configure()
    runner.activate()
    runner.run_stepped(args.episodes * (spec.max_episode_steps + 2), until=lambda: sim.finished)
    stats = runner.stats()
    runner.shutdown()
    return {**{k: v for k, v in sim.summary().items() if k != "results"}, "rate_limited_ticks": stats["rate_limited_ticks"]}


def stop(sim: subprocess.Popen) -> tuple[str, str]:
    """End the simulator (SIGTERM, then SIGKILL) and return what it wrote."""
    if sim.poll() is None:
        sim.terminate()
    try:
        return sim.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        sim.kill()
        return sim.communicate(timeout=5)


def describe(sim: subprocess.Popen) -> str:
    code = sim.returncode
    if code is None:
        return "was still running"
    return f"exited with code {code}"


def run_ros2(args) -> dict:
    from robotune.deploy.cli import default_observation_topics
    from robotune.deploy.ros.transport import Ros2Transport
    from robotune.deploy.runner import PolicyRunner
    from robotune.deploy.ros.topics import RosTopics

    checkpoint, _ = load(args.checkpoint)
    spec = checkpoint.task_spec
    domain_id = 61
    sim_argv = [sys.executable, "-m", "robotune.deploy.ros.simulator_driver", "--checkpoint", args.checkpoint, "--episodes",
                str(args.episodes), "--seed", str(args.seed), "--mode", "lockstep", "--domain-id", str(domain_id),
                "--max-wall-s", str(args.max_wall_s)]
    sim = subprocess.Popen(sim_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    topics = default_observation_topics(spec, spec.robot)
    transport = Ros2Transport(spec.robot.joint_names, args.rate_hz, RosTopics(episode="/episode", observation_topics=topics),
                              domain_id=domain_id, gripper=spec.robot.gripper.name if spec.robot.gripper else None)
    runner = PolicyRunner(checkpoint.policy, spec, transport, runner_config(args, args.rate_hz, spec.control_rate_hz),
                          observation_topics=topics)
    started = time.monotonic()
    out = err = ""
    try:
        runner.configure()
        runner.activate()
        while sim.poll() is None and not transport.finished.is_set() and time.monotonic() - started < args.max_wall_s + 10:
            runner.run_for(0.2)
        stats = runner.stats()
        runner.shutdown()
        out, err = sim.communicate(timeout=30)
    except BaseException as exc:
        runner.shutdown()
        state = "was still running (stopped now)" if sim.poll() is None else describe(sim)
        out, err = stop(sim)
        raise RuntimeError(f"ROS 2 leg failed: {exc}\nsimulator {state}; stdout tail: {out[-500:]!r}\n"
                           f"stderr tail:\n{err[-4000:]}") from exc
    if sim.returncode != 0:
        raise RuntimeError(f"simulator_driver {describe(sim)}; its stderr:\n{err[-4000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    return {**{k: v for k, v in summary.items() if k != "results"}, "wall_s": round(time.monotonic() - started, 1),
            "runner": {k: stats[k] for k in ("ticks", "policy_ticks", "stale_ticks", "no_action_ticks", "rate_limited_ticks",
                                             "overruns", "jitter_p99_ms", "latched")}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=100000)
    p.add_argument("--rate-hz", type=float, default=100.0,
                   help="runner rate over ROS 2 (lockstep: 5x real time at 100; the rate limit follows robot time)")
    p.add_argument("--lead-ticks", type=int, default=1)
    p.add_argument("--blend-steps", type=int, default=0)
    p.add_argument("--max-wall-s", type=float, default=900.0)
    p.add_argument("--legs", default="direct,sim,ros2", help="comma-separated subset of direct,sim,ros2")
    args = p.parse_args()
    if not netns.inside():
        return netns.reexec_in_private_netns(timeout_s=3600, env={**os.environ, "PYTHONPATH": PYTHONPATH})
    import torch

    torch.set_num_threads(1)
    result = {"checkpoint": args.checkpoint, "episodes": args.episodes, "lead_ticks": args.lead_ticks,
              "blend_steps": args.blend_steps, "rate_hz": args.rate_hz}
    legs = args.legs.split(",")
    for name, fn in (("direct", run_direct), ("sim", run_sim), ("ros2", run_ros2)):
        if name not in legs:
            continue
        result[name] = fn(args)
        print(name, result[name], file=sys.stderr, flush=True)
    if "ros2" in result and "direct" in result:
        result["ros2_minus_direct_points"] = round(100 * (result["ros2"]["success_rate"] - result["direct"]["success_rate"]), 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
