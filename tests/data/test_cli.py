"""`robotune data` as a user types it: import, info and export on small files."""

import numpy as np
import pytest

from robotune.cli import main as robotune
from robotune.data import load_dataset

from .test_robomimic import write_robomimic


def test_import_info_export(tmp_path, capsys):
    write_robomimic(tmp_path / "low_dim.hdf5")
    store = tmp_path / "lift.zarr"
    robotune(["data", "import", str(tmp_path / "low_dim.hdf5"), str(store), "--obs-keys", "robot0_eef_pos,object"])
    assert "3 episodes, 13 steps" in capsys.readouterr().out
    imported = load_dataset(store)
    assert imported.obs_dim == 13
    assert imported.metadata["provenance"]["source"] == str(tmp_path / "low_dim.hdf5")
    assert imported.metadata["provenance"]["imported_by"] == "robotune data import"

    robotune(["data", "info", str(store)])
    out = capsys.readouterr().out
    for expected in ("3 episodes, 13 steps", "robot0_eef_pos", "(13, 13)", "return", "episode ends: 3 terminated"):
        assert expected in out

    robotune(["data", "export", str(store), str(tmp_path / "lerobot"), "--format", "lerobot", "--fps", "20"])
    capsys.readouterr()
    np.testing.assert_array_equal(load_dataset(tmp_path / "lerobot").action, imported.action)


def test_errors_exit_with_the_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        robotune(["data", "info", str(tmp_path / "missing.zarr")])
    assert exit_info.value.code == 1
    assert "missing.zarr does not exist" in capsys.readouterr().err
