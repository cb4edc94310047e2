"""Every learning method for a few steps on CUDA, then the CUDA-trained checkpoints evaluated on the CPU.

    robotune data generate locomotion --env hopper --level medium --steps 5000 --out data/cuda-check
    python benchmarks/cuda_check.py --dataset data/cuda-check/hopper-medium-5000-seed0.zarr   # on a machine with a GPU

Each row runs `robotune train ... device=cuda` in a subprocess with tiny budgets: behaviour cloning
(diffusion, flow, Gaussian), PPO from scratch, SAC on a Gymnasium MuJoCo task, the four fine-tuning
methods and Gaussian PPO from those BC checkpoints, and the offline engine (TD3+BC) and IQL on a small
generated Hopper dataset. Meanwhile torch's CUDA sync debug mode reports every host-device
synchronisation (`.item()`, `.cpu()`, `.numpy()`), counted per line of code (`sync_sites`): acting
in the environments needs them, an update should not. Then `robotune eval` (always on the CPU) reloads each checkpoint on the CPU, so a checkpoint written
on a GPU runs where the robot is. The last line is a JSON list of records
{method, ok, train_s, eval_success, syncs, sync_sites}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

QUIET = ["logger=quiet", "eval.video=0", "eval.episodes=5", "resume=false"]
GAUSSIAN_PENDULUM = ["task=gymnasium", "task.env_id=InvertedPendulum-v5"]

# The counting wrapper: run the CLI with torch's sync debug mode at "warn" and count its warnings.
COUNTING_MAIN = """
import collections, json, sys, warnings, torch
if torch.cuda.is_available():
    torch.cuda.set_sync_debug_mode("warn")
sites = collections.Counter()
def show(message, category, filename, lineno, *args, **kwargs):
    if "synchroniz" in str(message).lower():
        sites[f"{filename.split('robotune/')[-1]}:{lineno}"] += 1
warnings.showwarning = show
warnings.simplefilter("always")
from robotune.cli import main
sys.argv = ["robotune", *sys.argv[1:]]
try:
    main()
finally:
    print("SYNC_SITES " + json.dumps(dict(sites.most_common())), flush=True)
"""


def run(args: list[str], log: Path, counted: bool = False, timeout: float = 300) -> tuple[bool, float, dict | None]:
    """Run `robotune <args>`; returns (succeeded, seconds, {code site: host-device synchronisations} or None)."""
    command = [sys.executable, "-c", COUNTING_MAIN, *args] if counted else [sys.executable, "-m", "robotune.cli", *args]
    started = time.monotonic()
    with log.open("w") as out:
        try:
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            ok = result.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
    seconds = time.monotonic() - started
    sites = None
    for line in log.read_text().splitlines():
        if line.startswith("SYNC_SITES "):
            sites = json.loads(line.removeprefix("SYNC_SITES "))
    return ok, seconds, sites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("runs/cuda-check"))
    parser.add_argument("--device", default="cuda", help="cpu runs the same rows here, to check the commands")
    parser.add_argument("--jobs", type=int, default=8, help="rows at a time")
    parser.add_argument("--dataset", type=Path, required=True,
                        help="a hopper locomotion dataset for the offline rows (robotune data generate locomotion --env hopper)")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = args.root
    dataset = args.dataset.resolve()

    bc = lambda policy: ["train", f"policy={policy}", "algo.steps=200", "data.num_episodes=10", f"data.cache_dir={root / 'data'}"]
    finetune = lambda algo, policy: ["train", f"algo={algo}", f"policy={policy}", f"init_from={root / ('bc-' + policy)}"]
    rows: list[tuple[str, list[str]]] = [
        ("bc-diffusion", bc("diffusion")),
        ("bc-flow", bc("flow")),
        ("bc-gaussian", bc("gaussian")),
        ("ppo", ["train", "algo=ppo", "policy=gaussian", "algo.steps=3"]),
        ("sac", ["train", *GAUSSIAN_PENDULUM, "algo=sac", "policy=gaussian_sac", "algo.steps=400", "algo.learning_starts=100"]),
        ("dppo", [*finetune("dppo", "diffusion"), "algo.steps=2"]),
        ("residual_ppo", [*finetune("residual_ppo", "diffusion"), "algo.steps=2"]),
        ("fpo", [*finetune("fpo", "flow"), "algo.steps=2"]),
        ("dsrl", [*finetune("dsrl", "diffusion"), "algo.steps=200", "algo.learning_starts=100"]),
        ("ppo_finetune", [*finetune("ppo_finetune", "gaussian"), "algo.steps=2"]),
        ("td3_bc", ["train", "+offline=td3_bc_hopper", f"data.path={dataset}", "algo.steps=300"]),
        ("iql", ["train", "+offline=iql_hopper", f"data.path={dataset}", "algo.steps=300"]),
    ]

    def check(row: tuple[str, list[str]]) -> dict:
        name, train_args = row
        run_dir = root / name
        ok, seconds, sites = run([*train_args, f"run_dir={run_dir}", f"device={args.device}", *QUIET], root / f"{name}.log", counted=True)
        success = None
        if ok:
            eval_ok, _, _ = run(["eval", f"checkpoint={run_dir}", "episodes=3", "video=0"], root / f"{name}-eval.log")
            summary = run_dir / "summary.json"
            success = json.loads(summary.read_text()).get("eval_success_rate") if summary.exists() else None
            ok = eval_ok
        record = {"method": name, "ok": ok, "train_s": round(seconds, 1), "eval_success": success,
                  "syncs": sum(sites.values()) if sites is not None else None, "sync_sites": sites}
        print(json.dumps(record), flush=True)
        return record

    # Two waves, in parallel within each: what needs no BC checkpoint, then the fine-tuning rows that start from one.
    fine_tuning = [row for row in rows if any(arg.startswith("init_from=") for arg in row[1])]
    with ThreadPoolExecutor(args.jobs) as pool:
        records = list(pool.map(check, [row for row in rows if row not in fine_tuning]))
        records += list(pool.map(check, fine_tuning))
    print(json.dumps(records))


if __name__ == "__main__":
    main()
