#!/usr/bin/env bash
# Install robotune and everything its tests need into the current Python (3.11+).
# torch is installed first, pinned: 2.13.0 is the CPU build these machines hold; an unpinned torch
# would pull a multi-GB CUDA build. The ROS 2 Jazzy wheels give real rclpy over Fast DDS.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[ros,test]"
