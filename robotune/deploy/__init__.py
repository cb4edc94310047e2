"""Deploy a trained policy on a robot: over ROS 2 (rclpy) or straight onto the task's simulation.

The runtime (no ROS import):

    policy ──> ChunkPlanner (planner.py: the chunk schedule of rollout/chunking.py, planned ahead)
                   │
    PolicyRunner (runner.py: fixed-rate loop; configure → activate → deactivate → shutdown)
       │  ObservationLayout (observation.py): named signals → obs vector in TaskSpec.obs_names order
       │  SafetyLayer (safety.py): limits, rate limit, ramp, tracking bound, stale watchdog,
       │                           NaN hold/latch, e-stop, warm-up
       │  trained joint order ──by name──> the controller's command_joints
       ▼
    Transport (transport.py) ── ros/transport.py  Ros2Transport: JointState merged by name,
              │                                  Float64MultiArray / named JointTrajectory out,
              │                                  /emergency_stop, operator reset, shadow topic
              └─ stepped_transport.py  SteppedEnvTransport: steps a task env directly (transport=sim)

    task_env_robot.py      a task environment seen as a robot (shared by the stepped transport
                           and the ROS 2 simulator driver)
    robot_description.py   robots described in YAML, limits from a URDF
    cli.py                 `robotune deploy`: staged startup, log lines, status line, exit codes

The ROS 2 backend (`ros/`: transport, lean nodes, MCAP recorder, `ros/simulator_driver.py`, a
MuJoCo robot driver that speaks ROS 2) imports rclpy; the rest of this package runs without ROS.
"""


class DeployError(RuntimeError):
    """Deployment cannot start or continue; the message says what to fix."""
