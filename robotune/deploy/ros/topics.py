"""ROS 2 topic names and message choices for the deploy runner; no rclpy import, so configs can build it."""

from __future__ import annotations

from dataclasses import dataclass, field

from robotune.deploy.observation import ArrayTopic


@dataclass
class RosTopics:
    """Topic names and message choices; the defaults follow ros2_control's conventions."""

    joint_states: str = "/joint_states"
    # "array": std_msgs/Float64MultiArray to a forward_command_controller, data in the robot's command_joints order.
    # "trajectory": trajectory_msgs/JointTrajectory with one point to a joint_trajectory_controller.
    command_type: str = "array"
    array_command: str = "/forward_position_controller/commands"
    trajectory_command: str = "/joint_trajectory_controller/joint_trajectory"
    # One point reached after 1.5 control periods: late enough that the controller interpolates
    # smoothly, early enough that the next point replaces it before it is reached.
    trajectory_time_from_start_periods: float = 1.5
    # A gripper (RobotSpec.gripper) has a controller of its own, as in ros2_control: a forward_command_controller
    # over its one command interface takes a std_msgs/Float64MultiArray holding one value, in the gripper's units.
    gripper_command: str = "/gripper_controller/commands"
    estop: str = "/emergency_stop"  # std_msgs/Bool; True latches the stop
    reset: str = "/robotune/reset"  # std_msgs/Empty: an operator reset re-arms the runner after a latch
    # mode=shadow: the would-be commands go here (same message type), never to the controller topic
    shadow_command: str = "/robotune/shadow/commands"
    shadow_gripper_command: str = "/robotune/shadow/gripper_commands"
    episode: str | None = None  # std_msgs/String JSON events from a simulator; None on a real robot
    # Write the stamp of the JointState a command was computed from into the command (see Ros2Transport).
    echo_obs_stamp: bool = True
    observation_topics: dict[str, ArrayTopic] = field(default_factory=dict)
