"""Fixtures shared by the deploy tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    """A run directory with a tiny Gaussian checkpoint of the built-in reach_around task (trains in seconds)."""
    from robotune.training.loop import train
    from tests.helpers import compose_config, tiny_train_overrides

    tmp_path = tmp_path_factory.mktemp("checkpoint")
    train(compose_config("train", tiny_train_overrides(tmp_path, policy="gaussian", steps=10)))
    return tmp_path / "run"
