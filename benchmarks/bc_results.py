"""Behaviour cloning on reach_around with every built-in policy: a markdown table of success rates.

    PYTHONPATH=. python benchmarks/bc_results.py [--seeds 0 1] [--steps 3000] [--out benchmarks/results/bc_reach_around.md]

Each (policy, seed) is one ordinary `robotune train` run (same config as the CLI, default
`algo=bc`, evaluation over `eval.episodes` seeded episodes with deterministic sampling), so a run
that is interrupted resumes when the script is started again. reach_around's expert passes the
post on the left or the right with equal probability from identical observation histories: a
policy that averages the two modes hits the post.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from hydra import compose, initialize_config_module

from robotune.configs import store_plugin_configs
from robotune.core.registry import load_plugins
from robotune.training.loop import train

# row name -> config overrides
POLICIES: dict[str, list[str]] = {
    "diffusion": ["policy=diffusion"],  # DDIM, 10 network calls per chunk
    "flow": ["policy=flow"],  # 10 Euler steps
    "flow-2": ["policy=flow", "policy.num_steps=2"],
    "mip": ["policy=mip"],  # 2 network calls
    "regression": ["policy=regression"],
    "gaussian": ["policy=gaussian"],
}
NETWORK_CALLS = {"diffusion": 10, "flow": 10, "flow-2": 2, "mip": 2, "regression": 1, "gaussian": 1}


def source_commit() -> str:
    """The checked-out commit (with "+changes" if the tree is dirty), so a table says what produced it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty.strip() else "")


def run(name: str, seed: int, args: argparse.Namespace) -> dict:
    overrides = [
        *POLICIES[name],
        f"seed={seed}",
        f"algo.steps={args.steps}",
        f"eval.episodes={args.episodes}",
        f"run_dir={args.run_root}/{name}-seed{seed}",
        "logger=quiet",
        f"torch_threads={args.threads}",
    ]
    with initialize_config_module("robotune.configs", version_base=None):
        cfg = compose("train", overrides=overrides)
    return train(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--run-root", default="runs/bc_results")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bc_reach_around.md"))
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads; on the shared 2-core machine 2 threads ran 20x slower than 1"
    )
    args = parser.parse_args()
    load_plugins()
    store_plugin_configs()

    rows = []
    for name in args.policies:
        summaries = [run(name, seed, args) for seed in args.seeds]
        rates = [s["eval_success_rate"] for s in summaries]
        rows.append(
            {
                "policy": name,
                "network_calls": NETWORK_CALLS[name],
                "success_rate_mean": statistics.fmean(rates),
                "success_rates": rates,
                "mean_return": statistics.fmean(s["eval_mean_return"] for s in summaries),
                "train_seconds": statistics.fmean(s["train_seconds_this_session"] for s in summaries),
            }
        )

    lines = [
        f"BC on `reach_around`, {args.steps} steps, {args.episodes} evaluation episodes per seed, seeds {args.seeds}, "
        f"code at commit {source_commit()}.",
        "",
        "| policy | network calls per chunk | success rate | per seed | mean return | train s (last session) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_seed = ", ".join(f"{x:.0%}" for x in r["success_rates"])
        lines.append(
            f"| {r['policy']} | {r['network_calls']} | {r['success_rate_mean']:.0%} | {per_seed} | "
            f"{r['mean_return']:.2f} | {r['train_seconds']:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
