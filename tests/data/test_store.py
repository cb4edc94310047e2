import json
import shutil

import numpy as np
import pytest

from robotune.core.dataset import DatasetError, Episode, EpisodeDataset
from robotune.data.episodes import concatenate_episodes
from robotune.data import detect_format, load_dataset, save_dataset
from robotune.data.store import SCHEMA_VERSION, provenance, read_store, write_store

from .conftest import assert_same_episodes


def test_round_trip_memory_mapped_with_provenance(dataset, tmp_path):
    path = tmp_path / "demo.zarr"
    save_dataset(dataset, path, metadata={"provenance": provenance("test writer", "/data/raw.hdf5", seed=3)})
    assert detect_format(path) == "robotune"
    loaded = load_dataset(path)
    assert_same_episodes(dataset, loaded)
    assert isinstance(loaded.obs, np.memmap) and not loaded.obs.flags.writeable
    assert isinstance(loaded.final_obs, np.memmap)
    assert loaded.has_rewards and loaded.has_final_obs
    meta = loaded.metadata
    assert meta["provenance"] == {"generator": "test writer", "source": "/data/raw.hdf5", "seed": 3}
    assert meta["schema_version"] == SCHEMA_VERSION and meta["num_steps"] == 15 and meta["num_episodes"] == 3
    # The chunks on disk are compressed: the metadata names a compressor for every array.
    codecs = json.loads((path / "obs" / "zarr.json").read_text())["codecs"]
    assert any(c["name"] == "blosc" for c in codecs)
    in_memory = load_dataset(path, mmap=False)
    assert not isinstance(in_memory.obs, np.memmap)
    assert_same_episodes(dataset, in_memory)


def test_rewritten_store_is_never_read_from_a_stale_cache(dataset, tmp_path):
    path = tmp_path / "d.zarr"
    write_store(dataset, path)
    first = read_store(path)
    assert first.obs[0, 0] == dataset.obs[0, 0]
    changed = EpisodeDataset(
        dataset.obs + 1, dataset.action, dataset.episode_ends, dataset.reward, final_obs=dataset.final_obs
    )
    write_store(changed, path)
    assert read_store(path).obs[0, 0] == dataset.obs[0, 0] + 1
    assert len(list((tmp_path / "cache" / "decompressed").iterdir())) == 1  # the stale copy is gone


def test_absent_fields_stay_absent(tmp_path):
    bc = concatenate_episodes([Episode(obs=np.ones((4, 2), np.float32), action=np.zeros((4, 1), np.float32))])
    save_dataset(bc, tmp_path / "bc.zarr")
    loaded = load_dataset(tmp_path / "bc.zarr")
    assert not loaded.has_rewards and not loaded.has_final_obs
    assert loaded.truncated.tolist() == [False, False, False, True]


def test_refuses_to_overwrite_what_is_not_a_store(dataset, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="exists and is not a robotune dataset store; refusing"):
        write_store(dataset, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_newer_schema_and_missing_arrays_are_named(dataset, tmp_path):
    path = tmp_path / "d.zarr"
    write_store(dataset, path)
    meta_file = path / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["attributes"]["robotune_dataset"]["schema_version"] = SCHEMA_VERSION + 1
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade robotune"):
        read_store(path)
    write_store(dataset, path)
    shutil.rmtree(path / "action")
    with pytest.raises(DatasetError, match=r"lacks the array\(s\) \['action'\]"):
        read_store(path)


def test_unknown_options_and_formats_are_named(dataset, tmp_path):
    save_dataset(dataset, tmp_path / "d.zarr")
    with pytest.raises(DatasetError, match=r"the robotune format .* takes no option\(s\) \['filter_key'\]"):
        load_dataset(tmp_path / "d.zarr", filter_key="train")
    with pytest.raises(DatasetError, match="unknown dataset format 'hdf6'"):
        load_dataset(tmp_path / "d.zarr", format="hdf6")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the format of"):
        load_dataset(tmp_path / "plain")
