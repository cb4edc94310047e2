"""Time from `robotune deploy` to its first command, with the ROS 2 driver already up.

    python benchmarks/deploy_startup.py --checkpoint DIR [--repeats 3]

The MuJoCo simulator driver (`robotune.deploy.ros.simulator_driver`, realtime mode, 100 Hz joint
states) starts first. A second after it says it is publishing, as with a robot that is already
running, `python -m robotune.cli deploy transport=ros2 ...` is launched as a fresh process; its summary's
`first_command_s` is the time from that process's start (the kernel's start time in /proc, so
interpreter start-up counts) to its first command. The stages come from its log lines
(`[deploy  1.23s] ...`, seconds since launch). Everything runs inside a private network namespace
(the script re-executes itself under `unshare -n` as root). The last stdout line is a JSON list,
one record per repeat, with the host steal and load average: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from machine_noise import StealMeter
from robotune.deploy import netns
from robotune.deploy.ros.simulator_driver import READY_LINE

REPO = Path(__file__).resolve().parents[1]
PYTHONPATH = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
STAGE = re.compile(r"^\[deploy\s+([0-9.]+)s\] \w+ (.*)$")
STAGE_KEYS = {  # log line prefix -> stage name
    "robotune deploy:": "deploy_called",
    "connecting to ROS 2": "ros_start",
    "importing torch": "torch_import_started",
    "loading the policy": "policy_load_started",
    "policy loaded": "policy_loaded",
    "policy warmed up": "policy_warmed_up",
    "configured": "observation_complete",
    "active": "active",
}


def stages(stderr: str) -> dict[str, float]:
    found = {}
    for line in stderr.splitlines():
        match = STAGE.match(line)
        if not match:
            continue
        for prefix, name in STAGE_KEYS.items():
            if match.group(2).startswith(prefix) and name not in found:
                found[name] = float(match.group(1))
    return found


def wait_until_publishing(driver: subprocess.Popen, timeout_s: float) -> None:
    """Return once the driver's stderr says it publishes. A fixed sleep is not enough: on the shared
    machine the driver's own start-up took longer than 3 s, and overlapped the launch being measured.
    A thread reads its stderr to the end, so the driver never blocks on a full pipe."""
    publishing = threading.Event()

    def read() -> None:
        for line in driver.stderr:
            if line.startswith(READY_LINE):
                publishing.set()

    threading.Thread(target=read, name="driver-stderr", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not publishing.wait(0.2):
        if driver.poll() is not None:
            raise RuntimeError(f"the simulator driver exited {driver.returncode} before publishing")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator driver did not start publishing within {timeout_s:.0f} s")


def measure(checkpoint: str, domain_id: int) -> dict:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    driver = subprocess.Popen(
        [sys.executable, "-m", "robotune.deploy.ros.simulator_driver", "--checkpoint", checkpoint, "--episodes", "1000",
         "--mode", "realtime", "--joint-state-rate", "100", "--domain-id", str(domain_id), "--peer-timeout-s", "0",
         "--max-wall-s", "120"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        wait_until_publishing(driver, timeout_s=120)
        time.sleep(1.0)
        steal = StealMeter()
        loadavg = os.getloadavg()[0]
        deploy = subprocess.run(
            [sys.executable, "-m", "robotune.cli", "deploy", f"checkpoint={checkpoint}", "transport=ros2",
             f"ros.domain_id={domain_id}", "duration_s=1", "episodes=0", "status_line=false"],
            capture_output=True, text=True, timeout=180, cwd=REPO, env=env)
        steal_pct = steal.percent()
    finally:
        driver.terminate()
        driver.wait(timeout=20)
    if deploy.returncode != 0:
        raise RuntimeError(f"deploy exited {deploy.returncode}: {deploy.stderr[-3000:]}")
    summary = json.loads(deploy.stdout.strip().splitlines()[-1])
    return {"first_command_s": summary["first_command_s"], "stages_s": stages(deploy.stderr),
            "commands_sent": summary["runner"]["transport"]["commands_sent"], "cpu_steal_pct": steal_pct,
            "loadavg_1m_before": loadavg}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if not netns.inside():
        return netns.reexec_in_private_netns(timeout_s=900, env={**os.environ, "PYTHONPATH": PYTHONPATH})
    records = []
    for repeat in range(args.repeats):
        record = {"repeat": repeat, **measure(args.checkpoint, domain_id=70 + repeat)}
        print(record, file=sys.stderr, flush=True)
        records.append(record)
    print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
