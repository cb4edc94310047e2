"""robotune: demonstrations to RL fine-tuning to a ROS 2 robot, one plugin-based package."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robotune")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
