"""Robots described without Python: a YAML file, or joint limits read from a URDF.

    robotune deploy checkpoint=DIR robot_description=my_arm.yaml transport=ros2
    robotune deploy checkpoint=DIR robot_description=my_arm.urdf transport=ros2

The YAML form (every key but `joints` optional; unknown keys are refused, naming the file):

    name: my_arm
    control_rate_hz: 20              # default: the checkpoint task's rate
    command_interface: position      # or velocity
    command_joints: [elbow, shoulder]  # the controller's joint order; default: the order of `joints`
    urdf: my_arm.urdf                # limits for joints listed without them (relative to this file)
    joints:
      - {name: shoulder, lower: -2.6, upper: 2.6, max_velocity: 3.0}
      - {name: elbow}                # lower/upper/max_velocity from the URDF
    topics:                          # the driver's topics, where they differ from the deploy config's `ros`
      joint_states: /arm/joint_states
      array_command: /arm_controller/commands

A bare URDF gives the limits of the joints the checkpoint was trained for (URDF `<limit lower upper
velocity>`), in the trained order, at the task's control rate. URDF parsing is yourdfpy's, not
hand-written.
"""

from __future__ import annotations

import math
from pathlib import Path

from robotune.core.spec import JointSpec, RobotSpec, TaskSpec

YAML_KEYS = {"name", "control_rate_hz", "command_interface", "command_joints", "urdf", "joints", "topics"}
JOINT_KEYS = {"name", "lower", "upper", "max_velocity"}
TOPIC_KEYS = {"joint_states", "command_type", "array_command", "trajectory_command", "estop", "reset", "shadow_command"}


class RobotDescriptionError(ValueError):
    """A robot description file cannot be used; the message names the file, the key or the joint."""


def urdf_joint_limits(path: Path) -> dict[str, dict[str, float]]:
    """{joint: {"lower", "upper", "max_velocity"}} for every movable joint of a URDF (continuous: unbounded)."""
    import yourdfpy

    try:
        urdf = yourdfpy.URDF.load(str(path), load_meshes=False, build_scene_graph=False, build_collision_scene_graph=False)
    except Exception as exc:  # yourdfpy raises several types for malformed XML
        raise RobotDescriptionError(f"{path}: not a readable URDF: {exc}") from None
    limits = {}
    for name, joint in urdf.joint_map.items():
        if joint.type == "fixed" or joint.mimic is not None:
            continue
        limit = joint.limit
        unbounded = joint.type == "continuous" or limit is None or limit.lower is None or limit.upper is None
        limits[name] = {
            "lower": -math.inf if unbounded else float(limit.lower),
            "upper": math.inf if unbounded else float(limit.upper),
            "max_velocity": float(limit.velocity) if limit is not None and limit.velocity else math.inf,
        }
    return limits


def robot_from_urdf(path: str | Path, task: TaskSpec, name: str | None = None) -> RobotSpec:
    """The trained joints' limits from a URDF, in the trained order, at the task's control rate."""
    path = Path(path)
    limits = urdf_joint_limits(path)
    wanted = task.robot.joint_names if task.robot else ()
    missing = [j for j in wanted if j not in limits]
    if missing:
        raise RobotDescriptionError(f"{path}: no movable joint named {missing} (it has {sorted(limits)})")
    joints = tuple(JointSpec(j, **limits[j]) for j in wanted)
    interface = task.robot.command_interface if task.robot else "position"
    return RobotSpec(name or path.stem, joints, task.control_rate_hz, interface)


def robot_from_yaml(path: str | Path, task: TaskSpec) -> tuple[RobotSpec, dict[str, str]]:
    """(the robot, its topic overrides) from a YAML description (format in the module docstring)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RobotDescriptionError(f"robot description {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise RobotDescriptionError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RobotDescriptionError(f"{path}: expected a mapping with at least `joints`, got {type(data).__name__}")
    _refuse_unknown(data, YAML_KEYS, f"{path}")
    if not isinstance(data.get("joints"), list) or not data["joints"]:
        raise RobotDescriptionError(f"{path}: `joints` must be a non-empty list of {{name, lower, upper, max_velocity}}")
    urdf_limits = urdf_joint_limits(path.parent / data["urdf"]) if data.get("urdf") else {}
    joints = []
    for i, entry in enumerate(data["joints"]):
        where = f"{path}: joints[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise RobotDescriptionError(f"{where}: expected a mapping with a `name`, got {entry!r}")
        _refuse_unknown(entry, JOINT_KEYS, where)
        values = {**urdf_limits.get(entry["name"], {}), **{k: v for k, v in entry.items() if k != "name"}}
        absent = [k for k in ("lower", "upper") if k not in values]
        if absent:
            raise RobotDescriptionError(f"{where} ('{entry['name']}'): no {absent}, and no `urdf` that gives them")
        try:
            joints.append(JointSpec(str(entry["name"]), float(values["lower"]), float(values["upper"]),
                                    float(values.get("max_velocity", math.inf))))
        except (TypeError, ValueError) as exc:
            raise RobotDescriptionError(f"{where}: {exc}") from None
    topics = data.get("topics") or {}
    if not isinstance(topics, dict):
        raise RobotDescriptionError(f"{path}: `topics` must be a mapping of {sorted(TOPIC_KEYS)}")
    _refuse_unknown(topics, TOPIC_KEYS, f"{path}: topics")
    try:
        robot = RobotSpec(
            name=str(data.get("name", path.stem)),
            joints=tuple(joints),
            control_rate_hz=float(data.get("control_rate_hz", task.control_rate_hz)),
            command_interface=str(data.get("command_interface", "position")),
            command_joints=tuple(data.get("command_joints") or ()),
        )
    except ValueError as exc:
        raise RobotDescriptionError(f"{path}: {exc}") from None
    return robot, {k: str(v) for k, v in topics.items()}


def load_robot_description(path: str | Path, task: TaskSpec) -> tuple[RobotSpec, dict[str, str]]:
    """A `.urdf` file or a YAML description, by suffix."""
    path = Path(path)
    if path.suffix.lower() == ".urdf":
        return robot_from_urdf(path, task), {}
    return robot_from_yaml(path, task)


def _refuse_unknown(mapping: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(map(str, mapping)) - known)
    if unknown:
        raise RobotDescriptionError(f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")
