"""What the operator sees from `robotune deploy`: one-line errors with their exit code, log lines, the status line."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time

import pytest

from robotune.deploy.cli import EXIT_CODES, StatusLine, configure_logging, seconds_since_launch
from tests.deploy.netns import REPO


def test_a_missing_checkpoint_is_one_line_on_stderr_and_the_error_exit_code():
    result = subprocess.run([sys.executable, "-m", "robotune.cli", "deploy", "checkpoint=/nonexistent/run", "transport=sim"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == EXIT_CODES["error"] == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == ["robotune deploy: error: no checkpoint at /nonexistent/run: expected a directory with meta.json, "
                      "or a run directory with checkpoints/"]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_deploy_imports_no_plugin_but_the_robots_and_no_torch_before_it_has_the_checkpoint():
    """Every other plugin module (and diffusers, through the diffusion policy) would cost seconds
    before the first command; torch comes after the robot side has started (see run_deployment)."""
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print(sorted(m for m in sys.modules if m.startswith(('robotune.plugins.', 'robotune.robots.',"
              " 'diffusers')) or m == 'torch')))\n"
              "from robotune.cli import main\n"
              "main(['deploy', 'checkpoint=/nonexistent/run', 'transport=sim'])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == EXIT_CODES["error"], result.stderr
    assert "no checkpoint at /nonexistent/run" in result.stderr
    assert result.stdout.strip() == str(["robotune.robots.reach_around", "robotune.robots.reach_around.robot",
                                          "robotune.robots.robosuite", "robotune.robots.robosuite.robot"])


def test_a_missing_mandatory_key_is_one_line_too():
    result = subprocess.run([sys.executable, "-m", "robotune.cli", "deploy", "transport=sim"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "robotune deploy: error: Missing mandatory value: checkpoint"
    assert "Traceback" not in result.stderr


def test_log_lines_carry_the_seconds_since_launch():
    stream = io.StringIO()
    handler = configure_logging(stream)
    try:
        logging.getLogger("robotune.deploy").warning("hold (stale) at tick 3: joint 'elbow' ...")
    finally:
        logging.getLogger("robotune.deploy").removeHandler(handler)
    line = stream.getvalue().strip()
    seconds = float(line[len("[deploy"):line.index("s]")])
    assert line.endswith("] WARNING hold (stale) at tick 3: joint 'elbow' ...")
    assert 0.0 < seconds <= seconds_since_launch() + 0.005  # printed rounded to 10 ms


class CountingRunner:
    def __init__(self) -> None:
        self.calls = 0

    def status_line(self) -> str:
        self.calls += 1
        return f"active tick {self.calls} policy"


def test_status_line_redraws_in_place_and_clears_itself():
    stream, runner = io.StringIO(), CountingRunner()
    with StatusLine(runner, stream, period_s=0.01):
        deadline = time.monotonic() + 5.0
        while runner.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    text = stream.getvalue()
    assert runner.calls >= 3 and "\n" not in text
    assert text.startswith("\r\033[Kactive tick 1 policy\r\033[Kactive tick 2 policy") and text.endswith("\r\033[K")


def test_a_fault_latched_at_the_end_exits_with_the_fault_code(checkpoint_dir, tmp_path, capsys):
    """A checkpoint with NaN network weights makes every action non-finite: the fault latches, exit code 4."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from robotune.core.checkpoint import resolve_checkpoint
    from robotune.deploy.cli import deploy
    from tests.helpers import compose_config

    broken = tmp_path / "broken"
    shutil.copytree(resolve_checkpoint(checkpoint_dir), broken)
    weights = load_file(str(broken / "policy.safetensors"))
    for name, value in weights.items():  # every network weight, not the normalisers
        if value.is_floating_point() and "normalizer" not in name:
            value.fill_(float("nan"))
    save_file(weights, str(broken / "policy.safetensors"))
    cfg = compose_config("deploy", [f"checkpoint={broken}", "transport=sim", "episodes=1"])
    with pytest.raises(SystemExit) as exit_info:
        deploy(cfg)
    assert exit_info.value.code == EXIT_CODES["fault"] == 4
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["outcome"] == "fault" and "invalid action" in summary["runner"]["latch_reason"]
    assert summary["commands_outside_limits"] == 0 and summary["invalid_commands"] == 0
