"""Locomotion generation on a few hundred steps: determinism, caching, levels and the expert's return."""

import numpy as np
import pytest

from robotune.core.dataset import DatasetError
from robotune.data import locomotion
from robotune.data.locomotion import default_experts_dir, generate

pytestmark = pytest.mark.skipif(
    not (default_experts_dir() / "Hopper.npz").is_file(), reason=f"no expert policies at {default_experts_dir()}"
)
TINY = {"steps": 300, "reference_episodes": 1}


def test_generation_is_deterministic_from_the_seed(tmp_path):
    first, path = generate("hopper", "medium", seed=3, out_dir=tmp_path / "a", **TINY)
    again, _ = generate("hopper", "medium", seed=3, out_dir=tmp_path / "b", **TINY)
    other, _ = generate("hopper", "medium", seed=4, out_dir=tmp_path / "c", **TINY)
    assert path == tmp_path / "a" / "hopper-medium-300-seed3.zarr"
    for name in ("obs", "action", "reward", "terminated", "truncated", "episode_ends", "final_obs"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name), err_msg=name)
    assert not np.array_equal(first.action[:50], other.action[:50])
    assert first.num_steps >= 300 and first.has_final_obs
    # every episode is complete: it ends terminated (fallen) or at the 1000-step limit
    assert (first.terminated | first.truncated)[first.episode_ends - 1].all()
    meta = first.metadata
    assert meta["env_id"] == "Hopper-v5" and meta["reference_returns"]["expert"] == 3234.3
    assert meta["provenance"]["source"].endswith("Hopper.npz") and meta["provenance"]["level"] == "medium"
    # the deterministic expert scores as the experts' README measured (3717-3719 over 1000 steps)
    assert meta["measured_returns"]["expert"] == pytest.approx(3718, abs=5)
    assert meta["measured_returns"]["random"] < 100


class Regenerated(Exception):
    pass


def test_cache_is_reused_until_the_settings_change(tmp_path, monkeypatch):
    generate("hopper", "expert", out_dir=tmp_path, **TINY)

    def record(*args, **kwargs):
        raise Regenerated

    monkeypatch.setattr(locomotion, "record", record)
    cached, _ = generate("hopper", "expert", out_dir=tmp_path, **TINY)
    assert cached.num_steps >= 300
    monkeypatch.setattr(locomotion, "EXPERT_NOISE", 0.3)  # a changed setting must not reuse the file
    with pytest.raises(Regenerated):
        generate("hopper", "expert", out_dir=tmp_path, **TINY)


def test_medium_expert_is_medium_then_expert(tmp_path):
    mixed, _ = generate("hopper", "medium-expert", out_dir=tmp_path, **TINY)
    medium, _ = generate("hopper", "medium", out_dir=tmp_path, **TINY)
    expert, _ = generate("hopper", "expert", out_dir=tmp_path, **TINY)
    assert len(mixed) == len(medium) + len(expert)
    np.testing.assert_array_equal(mixed.obs, np.concatenate([medium.obs, expert.obs]))
    assert expert.metadata["normalised_return_mean"] > medium.metadata["normalised_return_mean"]


def test_missing_expert_folder_is_named(tmp_path):
    with pytest.raises(DatasetError, match=f"expert policy file {tmp_path / 'nowhere' / 'Hopper.npz'} does not exist"):
        generate("hopper", "medium", out_dir=tmp_path, experts_dir=tmp_path / "nowhere", **TINY)
    with pytest.raises(DatasetError, match="unknown locomotion level 'mediocre'"):
        generate("hopper", "mediocre", out_dir=tmp_path, **TINY)
