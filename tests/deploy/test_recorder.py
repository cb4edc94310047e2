"""MCAP schemas: the ros2msg definition text that Foxglove and rosbag2 need to decode CDR messages."""

import pytest

from robotune.deploy.ros.recorder import MSG_SEPARATOR, _complex_field_types, message_definition


def test_field_types_skip_builtins_constants_comments_and_bounds():
    text = """# a comment
uint8 MODE_A=1
string NAME = "x"
std_msgs/Header header  # trailing comment
float64[] position
string<=10 label
Point[<=4] points
geometry_msgs/msg/Pose[3] poses
bool flag true
"""
    assert _complex_field_types("my_pkg", text) == ["std_msgs/Header", "my_pkg/Point", "geometry_msgs/Pose"]


def test_joint_trajectory_definition_lists_each_dependency_once_after_its_own_text():
    text = message_definition("trajectory_msgs", "JointTrajectory")
    sections = text.split(MSG_SEPARATOR + "\n")
    assert "JointTrajectoryPoint[] points" in sections[0]
    names = [s.splitlines()[0] for s in sections[1:]]
    assert names == ["MSG: std_msgs/Header", "MSG: trajectory_msgs/JointTrajectoryPoint",
                     "MSG: builtin_interfaces/Time", "MSG: builtin_interfaces/Duration"]


def test_unknown_message_type_names_the_missing_file():
    with pytest.raises(FileNotFoundError, match="no_such_pkg/Nothing"):
        message_definition("no_such_pkg", "Nothing")
