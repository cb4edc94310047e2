"""Control-loop jitter and observation-to-command latency of the deploy runner over real ROS 2.

    python benchmarks/deploy_latency.py [--seconds 10] [--rates 100 500] [--checkpoint DIR]
                                        [--realtime-priority 80] [--cpu-latency-us 0] [--repeats 3]

For each rate, the MuJoCo ROS 2 simulator (`robotune.deploy.ros.simulator_driver`, realtime mode) runs in its
own process and publishes /joint_states at 1 kHz; the runner (this process) ticks at the rate,
plans with a policy (the checkpoint's, or a small random MLP chunk policy with the same shapes),
and publishes Float64MultiArray commands carrying the stamp of the JointState they came from.

- jitter: |actual tick period - nominal| from the runner's tick start times (perf_counter).
- obs_to_cmd: measured at the robot side, from a JointState's stamp (taken as it is published) to
  the DDS reception of the command computed from it (matched by the echoed stamp). It includes the
  state's age when the tick reads it (`state_age_at_read_p50/p99_ms`: up to 1 ms at 1 kHz plus
  delivery, more when the simulator publishes late: `joint_state_gap_p99_ms`), the tick itself
  (`tick_p99_ms`; inference runs after the command is sent, or in the planner thread) and DDS
  delivery both ways. Commands that answer a state after the simulator has ended its episode are
  counted apart (`commands_after_episode_end`), as are the runner's reads of such states: the
  simulator stops publishing for `--reset-gap-s` between episodes, which a real robot does not.
- With `--realtime-priority P` the runner's control thread runs SCHED_FIFO at P and the
  simulator's loop at P - 1 (root), as a ros2_control deployment would.
- With `--cpu-latency-us N` the runner holds a PM QoS request that keeps idle CPUs able to wake
  within N µs (RunnerConfig.cpu_latency_us, see robotune/deploy/cpu_latency.py), and so does the
  bare-loop calibration.

Everything DDS runs inside a private network namespace (the script re-executes itself under
`unshare -n` as root). The last stdout line is a JSON list with one record per rate and repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from machine_noise import StealMeter
from robotune.deploy import netns

REPO = Path(__file__).resolve().parents[1]
PLAN_ON_TICK = {"auto": None, "on": True, "off": False}
PYTHONPATH = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))


def random_mlp_policy(spec):
    """A Policy with a 2x256 MLP over the observation history, random weights: realistic inference cost."""
    import numpy as np
    import torch
    from torch import nn

    from robotune.core.normalization import Normalizer
    from robotune.core.policy import Policy, PolicyConfig

    @dataclass
    class MLPConfig(PolicyConfig):
        obs_horizon: int = 2
        horizon: int = 16
        act_steps: int = 8

    class RandomMLPChunkPolicy(Policy):
        def __init__(self) -> None:
            config = MLPConfig()
            super().__init__(config, spec, Normalizer.identity(spec.obs_dim),
                             Normalizer(np.array(spec.action_low), np.array(spec.action_high)))
            self.net = nn.Sequential(nn.Linear(config.obs_horizon * spec.obs_dim, 256), nn.ReLU(), nn.Linear(256, 256),
                                     nn.ReLU(), nn.Linear(256, config.horizon * spec.action_dim))

        def compute_loss(self, obs_norm, action_norm):
            raise NotImplementedError

        def sample_chunk_norm(self, obs_norm, deterministic, generator):
            out = torch.tanh(self.net(obs_norm.flatten(1)) * 0.1)
            return out.view(obs_norm.shape[0], self.config.horizon, spec.action_dim)

    torch.manual_seed(0)
    return RandomMLPChunkPolicy().eval()


def bare_loop_jitter_p99_ms(rate_hz: float, seconds: float, priority: int | None, cpu_latency_us: int | None) -> float:
    """Calibration: the runner's sleep-then-spin timing alone (no ROS, no policy, nothing else running).

    Whatever this shows is the machine's own floor (a shared 2-core VM: its vCPUs get preempted
    for milliseconds now and then); the runner's jitter cannot be lower.
    """
    import numpy as np

    from robotune.deploy.cpu_latency import CpuLatencyRequest
    from robotune.deploy.runner import RunnerConfig, period_jitter_ms, wait_until

    spin_s = RunnerConfig(rate_hz=rate_hz).spin_s
    if priority:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    period = 1.0 / rate_hz
    starts = []
    with CpuLatencyRequest(cpu_latency_us):
        t0 = time.perf_counter()
        for k in range(int(seconds * rate_hz)):
            starts.append(wait_until(t0 + k * period, spin_s))
    if priority:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return float(np.percentile(period_jitter_ms(starts, period), 99))


def state_age_transport(*args, **kwargs):
    """A Ros2Transport that also records each joint state's age when the runner first reads it.

    The simulator stamps joint states with the wall clock of this machine, so the age is from the
    stamp to the read: the part of obs_to_cmd before the tick starts computing.
    """
    from robotune.deploy.ros.transport import Ros2Transport

    class StateAgeTransport(Ros2Transport):
        def __init__(self) -> None:
            super().__init__(*args, **kwargs)
            self.ages_ms: list[float] = []
            self._last_stamp = 0
            self._last_episode = None

        def snapshot(self):
            snapshot = super().snapshot()
            new_episode, self._last_episode = snapshot.episode != self._last_episode, snapshot.episode
            if snapshot.source_stamp_ns != self._last_stamp and len(self.ages_ms) < 1_000_000:
                self._last_stamp = snapshot.source_stamp_ns
                if not new_episode:  # as the simulator's latency samples (see simulator_driver's docstring)
                    self.ages_ms.append((time.time_ns() - snapshot.source_stamp_ns) / 1e6)
            return snapshot

    return StateAgeTransport()


def run_cell(rate_hz: float, seconds: float, domain_id: int, checkpoint: str | None, priority: int | None,
             cpu_latency_us: int | None = None, joint_state_rate: float = 1000.0,
             plan_on_tick: bool | None = None) -> dict:
    import numpy as np
    import torch

    from robotune.deploy.cli import default_observation_topics
    from robotune.deploy.runner import PolicyRunner, RunnerConfig
    from robotune.deploy.ros.topics import RosTopics
    from robotune.robots.reach_around.task import ReachAroundTask

    torch.set_num_threads(1)
    spec = ReachAroundTask().spec
    if checkpoint:
        from robotune.core.checkpoint import load_checkpoint

        policy = load_checkpoint(checkpoint).policy
    else:
        policy = random_mlp_policy(spec)
    startup_s = 1.0
    bare_steal = StealMeter()
    bare_jitter_p99_ms = bare_loop_jitter_p99_ms(rate_hz, min(seconds, 5.0), priority, cpu_latency_us)
    bare_steal_pct = bare_steal.percent()
    loadavg_before = os.getloadavg()[0]
    sim_argv = [sys.executable, "-m", "robotune.deploy.ros.simulator_driver", "--task", "reach_around", "--episodes", "100000",
                "--mode", "realtime", "--joint-state-rate", str(joint_state_rate), "--domain-id", str(domain_id),
                "--startup-s", str(startup_s), "--duration-s", str(seconds), "--max-wall-s", str(seconds + 90)]
    if priority:
        sim_argv += ["--realtime-priority", str(priority - 1)]
    sim = subprocess.Popen(sim_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    topics = default_observation_topics(spec, spec.robot)
    transport = state_age_transport(spec.robot.joint_names, rate_hz,
                                    RosTopics(episode="/episode", observation_topics=topics), domain_id=domain_id)
    runner = PolicyRunner(policy, spec, transport, RunnerConfig(
        rate_hz=rate_hz, configure_timeout_s=60.0, realtime_priority=priority, cpu_latency_us=cpu_latency_us,
        plan_on_tick=plan_on_tick),
                          observation_topics=topics)
    try:
        runner.configure()
        runner.activate()
        run_steal = StealMeter()
        end = time.monotonic() + seconds + 100
        # Stop counting at the simulator's "finished" event: after it the simulator stops publishing
        # while it writes its summary, and every tick until it exits (~1.8 s) would count as stale.
        while sim.poll() is None and not transport.finished.is_set() and time.monotonic() < end:
            runner.run_for(0.02)
        stats = runner.stats()
        run_steal_pct = run_steal.percent()
        runner.shutdown()
        out, err = sim.communicate(timeout=20)
    finally:
        if sim.poll() is None:
            sim.terminate()
            sim.wait(timeout=5)
    if sim.returncode != 0:
        raise RuntimeError(f"simulator_driver failed: {err[-2000:]}")
    robot = json.loads(out.strip().splitlines()[-1])
    return {
        "transport": "ros2",
        "rate_hz": rate_hz,
        "jitter_p50_ms": round(stats["jitter_p50_ms"], 4),
        "jitter_p99_ms": round(stats["jitter_p99_ms"], 4),
        "obs_to_cmd_p50_ms": round(robot["obs_to_cmd_p50_ms"], 4),
        "obs_to_cmd_p99_ms": round(robot["obs_to_cmd_p99_ms"], 4),
        "ticks": stats["ticks"],
        # where the latency goes: the joint state's age when the tick reads it, the runner's tick
        # (read, plan lookup, safety, publish) and the simulator's own gaps between joint states
        # (a late state ages every command computed from it)
        "tick_p50_ms": round(stats["tick_p50_ms"], 4),
        "tick_p99_ms": round(stats["tick_p99_ms"], 4),
        "state_age_at_read_p50_ms": round(float(np.percentile(transport.ages_ms, 50)), 4),
        "state_age_at_read_p99_ms": round(float(np.percentile(transport.ages_ms, 99)), 4),
        "joint_state_gap_p50_ms": round(robot["joint_state_gap_p50_ms"], 4),
        "joint_state_gap_p99_ms": round(robot["joint_state_gap_p99_ms"], 4),
        "joint_state_gap_max_ms": round(robot["joint_state_gap_max_ms"], 4),
        "overruns": stats["overruns"],
        "stale_ticks": stats["stale_ticks"],
        # of those, ticks held after a simulator episode reset (by design: the simulator pauses
        # --reset-gap-s and the runner waits for the new episode's first state and goal)
        "episode_wait_ticks": stats["episode_wait_ticks"],
        "sim_episodes": robot.get("episodes"),
        "latency_samples": robot["latency_samples"],
        "commands_after_episode_end": robot["commands_after_episode_end"],  # not latency samples, see simulator_driver
        "inference_ms_max": round(stats["planner"]["inference_ms_max"], 3),
        "plan_on_tick": stats["planner"]["on_tick"],
        "policy": "checkpoint" if checkpoint else "random_mlp_2x256",
        "realtime_priority": priority,
        "cpu_latency_us": cpu_latency_us,
        "runner_error": stats["last_error"],
        "joint_state_rate_hz": joint_state_rate,
        "bare_loop_jitter_p99_ms": round(bare_jitter_p99_ms, 4),  # calibration, see bare_loop_jitter_p99_ms
        # the share of CPU time the host took from this VM (machine_noise.py), during the bare loop and the run
        "bare_loop_steal_pct": bare_steal_pct,
        "cpu_steal_pct": run_steal_pct,
        "loadavg_1m_before": loadavg_before,
        "loadavg_1m_after": os.getloadavg()[0],  # this machine is shared: other work inflates the tails
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measured time per rate")
    p.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    p.add_argument("--repeats", type=int, default=1, help="measure every rate this many times (one record each)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--joint-state-rate", type=float, default=1000.0, help="simulator /joint_states rate (Hz)")
    p.add_argument("--realtime-priority", type=int, default=None,
                   help="SCHED_FIFO priority for the runner's control thread (the simulator's loop gets one less)")
    p.add_argument("--cpu-latency-us", type=int, default=None,
                   help="hold CPUs' idle wake-up latency at or below this while measuring (PM QoS, root); 0: idle CPUs poll")
    p.add_argument("--plan-on-tick", choices=sorted(PLAN_ON_TICK), default="auto",
                   help="RunnerConfig.plan_on_tick: auto (when warm-up plans fit half a period), on, off")
    args = p.parse_args()
    if not netns.inside():
        return netns.reexec_in_private_netns(timeout_s=600, env={**os.environ, "PYTHONPATH": PYTHONPATH})
    records = []
    for repeat in range(args.repeats):
        for i, rate in enumerate(args.rates):
            record = run_cell(rate, args.seconds, domain_id=40 + i, checkpoint=args.checkpoint,
                              priority=args.realtime_priority, cpu_latency_us=args.cpu_latency_us,
                              joint_state_rate=args.joint_state_rate,
                              plan_on_tick=PLAN_ON_TICK[args.plan_on_tick])
            record["repeat"] = repeat
            print(record, file=sys.stderr, flush=True)
            records.append(record)
    if args.repeats > 1:  # the spread between runs is large on a shared machine: show it
        for rate in args.rates:
            cells = [r for r in records if r["rate_hz"] == rate]
            print(f"{rate:g} Hz over {len(cells)} runs: " + ", ".join(
                f"{key} median {statistics.median(r[key] for r in cells):.2f} "
                f"[{min(r[key] for r in cells):.2f}, {max(r[key] for r in cells):.2f}]"
                for key in ("jitter_p99_ms", "obs_to_cmd_p50_ms", "obs_to_cmd_p99_ms", "state_age_at_read_p99_ms",
                            "bare_loop_jitter_p99_ms", "cpu_steal_pct") if all(r[key] is not None for r in cells)),
                file=sys.stderr)
    print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
