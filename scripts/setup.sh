#!/usr/bin/env bash
# Install robotune and everything its tests need into the current Python (3.11+).
# torch is installed first, pinned: 2.13.0 is the CPU build these machines hold; an unpinned torch
# would pull a multi-GB CUDA build. The ROS 2 Jazzy wheels give real rclpy over Fast DDS.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
# [scale]: Ray, and Hydra's Ray and submitit launchers (tests/training/test_sweeps.py runs a sweep through each)
python -m pip install --quiet --disable-pip-version-check -e ".[ros,scale,test]"
# robosuite 1.5 without its dependency list: that list pins mink==0.0.5 and so numpy<2, which zarr 3 and
# minari cannot use; mink serves only robosuite's GR1 whole-body IK. What the Panda tasks import is in
# pyproject.toml's dependencies.
python -m pip install --quiet --disable-pip-version-check --no-deps "robosuite>=1.5.2,<1.6"
# Rollout videos render headless through Mesa's software EGL; the machine images ship it, older ones may not.
if ! ldconfig -p | grep -q libEGL_mesa; then
    apt-get update -qq && apt-get install -y -qq libegl-mesa0 libgl1-mesa-dri
fi
