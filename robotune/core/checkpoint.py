"""The checkpoint format: one directory that fully describes how to rebuild what was trained.

    step_0004000/
      policy.safetensors          inference weights of the policy, normalisers included
      training_state.safetensors  everything else needed to resume (raw weights, optimiser, EMA, RNG)
      training_state.json         the non-tensor part of that state
      config.yaml                 the resolved run config
      meta.json                   format version, step, task spec, plugin names, sources and versions, processors

Tensors go to safetensors and everything else to JSON/YAML: no pickle. A checkpoint directory is
written under a temporary name and renamed into place, so a crash leaves either the old set of
checkpoints or the new one, never half a directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from safetensors.torch import load_file, save_file

import robotune
from robotune.core import registry
from robotune.core.checkpoint_paths import STEP_PREFIX, CheckpointError, list_checkpoints, resolve_checkpoint
from robotune.core.config import build_config
from robotune.core.normalization import Normalizer
from robotune.core.policy import Policy
from robotune.core.regularizer import ActionCorrectedPolicy, Regularizer, build_regularizer
from robotune.core.spec import TaskSpec

FORMAT_VERSION = 1


# ---- nested state <-> (flat tensors, JSON) ----------------------------------------------------
def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state (dicts with any keys, lists, tensors, scalars) into tensors and JSON.

    Tensors are replaced by {"__tensor__": key}; dicts become {"__dict__": [[key, value], ...]}
    so that integer keys (as in optimiser state) survive the JSON round trip.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().cpu().contiguous()
            return {"__tensor__": path}
        if isinstance(node, dict):
            return {"__dict__": [[k, walk(v, f"{path}.{k}")] for k, v in node.items()]}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(node)]
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot store {type(node).__name__} at '{path}' in a checkpoint")

    return tensors, walk(state, prefix)


def unflatten_state(tensors: dict[str, torch.Tensor], tree: Any) -> Any:
    if isinstance(tree, dict) and "__tensor__" in tree:
        return tensors[tree["__tensor__"]]
    if isinstance(tree, dict) and "__dict__" in tree:
        return {k: unflatten_state(tensors, v) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [unflatten_state(tensors, v) for v in tree]
    return tree


# ---- writing ----------------------------------------------------------------------------------
def save_checkpoint(
    checkpoints_dir: str | Path,
    step: int,
    policy: Policy,
    training_state: dict[str, Any],
    config: DictConfig,
    keep: int = 2,
    parent: dict | None = None,
    correctors: list[Regularizer] = (),
    processors: dict | None = None,
) -> Path:
    """Write `checkpoints_dir/step_<step>` atomically and keep only the newest `keep` checkpoints.

    `parent` names the checkpoint a fine-tuning run started from; meta.json records it.
    `correctors` (regularizers that correct actions at inference) are stored in correctors.safetensors.
    `processors` (JSON from `robotune.processing`: the task's observation -> the policy's) goes to meta.json."""
    checkpoints_dir = Path(checkpoints_dir)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    # config.yaml and meta.json describe the policy as saved, which an algorithm may have built around
    # the run's policy (residual PPO, DPPO and DSRL wrap the init_from policy): rebuild what is stored.
    config = config.copy()
    with open_dict(config):
        config.policy = OmegaConf.structured(policy.config)
    final = checkpoints_dir / f"{STEP_PREFIX}{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=checkpoints_dir))
    try:
        save_file(dict(policy.state_dict()), str(tmp / "policy.safetensors"))
        tensors, tree = flatten_state(training_state)
        save_file(tensors, str(tmp / "training_state.safetensors"))
        (tmp / "training_state.json").write_text(json.dumps(tree))
        (tmp / "config.yaml").write_text(OmegaConf.to_yaml(config, resolve=True))
        if correctors:
            weights = {f"{r.config.name}.{k}": v.contiguous() for r in correctors for k, v in r.state_dict().items()}
            save_file(weights, str(tmp / "correctors.safetensors"))
        meta = {
            "format_version": FORMAT_VERSION,
            "robotune_version": robotune.__version__,
            "torch_version": torch.__version__,
            "step": step,
            "task_spec": policy.spec.to_dict(),
            "plugins": {kind: _plugin_record(kind, config[registry.KINDS[kind]].name)
                        for kind in ("task", "policy", "algorithm")},
            "parent": parent,
            "action_correctors": [r.config.name for r in correctors],
            "processors": processors,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        for f in tmp.iterdir():  # data on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # re-saving the same step (e.g. final == periodic): swap atomically
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(checkpoints_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _plugin_record(kind: str, name: str) -> dict:
    """meta.json's record of a plugin, with the package that provided it, to name when it is missing."""
    plugin = registry.get(kind, name)
    return {"name": name, "source": plugin.plugin_source, "class": f"{plugin.__module__}.{plugin.__qualname__}"}


# ---- reading ----------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint file {path} is not valid JSON: {exc}") from None


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing")
    try:
        return load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"checkpoint file {path} is not a readable safetensors file: {exc}") from None


def _recorded_plugin(path: Path, meta: dict, kind: str) -> Any:
    """The plugin class `meta.json` names for `kind`; if none is registered under that name, the
    error names the package and version that provided it when the checkpoint was written."""
    recorded = meta["plugins"][kind]
    try:
        return registry.get(kind, recorded["name"])
    except registry.PluginError as exc:
        source = recorded.get("source", "an unrecorded package")
        package, _, version = source.rpartition(" ")
        install = f" Install it: pip install '{package}=={version}'." if package and version[:1].isdigit() else ""
        raise CheckpointError(f"{path} was trained with {kind} '{recorded['name']}' from {source}, "
                              f"which is not available here.{install}\n{exc}") from None


@dataclass
class Checkpoint:
    path: Path
    policy: Policy  # in eval mode, with its inference weights
    task_spec: TaskSpec
    config: DictConfig
    meta: dict


def build_policy(policy_config: Any, spec: TaskSpec) -> Policy:
    """An untrained policy from its plugin config (a `policy` node with its name) and task spec; load weights next."""
    policy_class = registry.get("policy", policy_config["name"])
    config = build_config(policy_class.config_class, policy_config, "policy")
    return policy_class(config, spec, Normalizer.identity(spec.obs_dim), Normalizer.identity(spec.action_dim))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the policy from the directory alone: its config, task spec and weights."""
    path = resolve_checkpoint(path)
    meta = _read_json(path / "meta.json")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path / 'meta.json'}: format_version {meta.get('format_version')} is not {FORMAT_VERSION}")
    config_file = path / "config.yaml"
    if not config_file.is_file():
        raise CheckpointError(f"checkpoint file {config_file} is missing")
    config = OmegaConf.load(config_file)
    spec = TaskSpec.from_dict(meta["task_spec"])
    _recorded_plugin(path, meta, "policy")  # a clear error when the policy's package is missing
    policy = build_policy(config.policy, spec)
    try:
        policy.load_state_dict(_read_tensors(path / "policy.safetensors"))
    except RuntimeError as exc:
        raise CheckpointError(f"{path / 'policy.safetensors'} does not match policy '{policy.config.name}': {exc}") from None
    policy.eval()
    if meta.get("action_correctors"):
        policy = ActionCorrectedPolicy(policy, _load_correctors(path, meta, config, policy))
    return Checkpoint(path, policy, spec, config, meta)


def _load_correctors(path: Path, meta: dict, config: DictConfig, policy: Policy) -> list[Regularizer]:
    """Rebuild the action-correcting regularizers from config.yaml and correctors.safetensors."""
    tensors = _read_tensors(path / "correctors.safetensors")
    obs_dim, action_dim = policy.config.obs_horizon * policy.obs_dim, policy.config.act_steps * policy.action_dim
    correctors = []
    for name in meta["action_correctors"]:
        regularizer = build_regularizer(name, config.regularizer[name], obs_dim, action_dim)
        prefix = f"{name}."
        try:
            regularizer.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        except RuntimeError as exc:
            raise CheckpointError(f"{path / 'correctors.safetensors'} does not match regularizer '{name}': {exc}") from None
        correctors.append(regularizer.eval())
    return correctors


def load_training_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    return unflatten_state(_read_tensors(path / "training_state.safetensors"), _read_json(path / "training_state.json"))
