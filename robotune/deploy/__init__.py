"""Deploy a trained policy on a robot: over ROS 2 (rclpy) or straight onto the task's MuJoCo simulation.

    policy ──> ChunkPlanner (plans the next chunk in a background thread, lead_ticks ahead)
                   │
    PolicyRunner (fixed-rate loop thread; configure → activate → deactivate → shutdown)
       │  ObservationLayout: named signals → obs vector in TaskSpec.obs_names order
       │  SafetyLayer: limits, rate limit, stale watchdog, NaN latch, e-stop, warm-up
       ▼
    Transport ── Ros2Transport (JointState by name, Float64MultiArray / JointTrajectory out, /emergency_stop)
              └─ SteppedEnvTransport  (steps the env directly; transport=sim)

    python -m robotune.deploy.ros.simulator_driver   a MuJoCo robot driver that speaks ROS 2
    robotune deploy checkpoint=DIR robot=planar_arm transport=sim|ros2

Modules that need rclpy (`ros2_transport`, `ros_node`, `sim_robot`) import it themselves; the rest
of this package runs without ROS installed.
"""
