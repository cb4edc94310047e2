"""The ROS 2 backend of the deploy runtime: transport, lean nodes, MCAP recorder and a simulator driver.

Everything here but `topics` imports rclpy; the runtime one level up does not.
"""
