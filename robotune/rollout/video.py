"""Rollout videos: MuJoCo offscreen rendering without a display, and MP4 files written with PyAV.

MuJoCo chooses its OpenGL backend from `MUJOCO_GL` once, when `mujoco` is first imported, and falls
back to GLFW, which needs a display. A run that imported mujoco before anyone set `MUJOCO_GL` could
then never render headless. `OffscreenRenderer` therefore picks its own backend per renderer:
`MUJOCO_GL` when it names one (egl, osmesa, glfw), else GLFW when `DISPLAY` is set, else EGL, which
Mesa's software driver (libegl-mesa0) provides on a CPU-only machine.

Usage, for an environment made with `render_mode="rgb_array"`:

    frames = record_episode(env, policy_act, seed=0)      # list of (H, W, 3) uint8
    write_mp4(frames, "eval/episode_000.mp4", fps=env.metadata["render_fps"])

PyAV ships its own FFmpeg libraries inside the wheel, so no system codec is needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np

from robotune.core.task import Task

HEADLESS_BACKENDS = ("egl", "osmesa")


def gl_backend() -> str:
    """The OpenGL backend an `OffscreenRenderer` uses: `MUJOCO_GL`, else glfw with a display, else egl."""
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if requested in (*HEADLESS_BACKENDS, "glfw"):
        return requested
    if requested:
        raise ValueError(f"MUJOCO_GL={requested!r} cannot render offscreen; use one of egl, osmesa, glfw")
    return "glfw" if os.environ.get("DISPLAY") else "egl"


def _gl_context_class(backend: str) -> type:
    # Each of these modules configures PyOpenGL for its platform on import, so import only the chosen one.
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        from mujoco.glfw import GLContext
    return GLContext


class OffscreenRenderer:
    """Renders RGB frames of a MuJoCo model from a fixed or a free camera.

    `camera` is a camera name from the MJCF, or None for a free camera set by `lookat` (m, world
    frame), `distance` (m), `azimuth` and `elevation` (degrees). The model's offscreen buffer
    (`<visual><global offwidth offheight>`, 640x480 by default) bounds `width` and `height`.
    Shadows are off by default: with Mesa's software GL they took 110 ms of a 125 ms 320x240 frame.
    `hidden_geom_groups` hides geom groups, e.g. robosuite's collision meshes (group 0).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        width: int = 320,
        height: int = 240,
        camera: str | None = None,
        lookat: tuple[float, float, float] = (0.0, 0.0, 0.0),
        distance: float = 1.5,
        azimuth: float = 90.0,
        elevation: float = -45.0,
        shadows: bool = False,
        hidden_geom_groups: tuple[int, ...] = (),
    ) -> None:
        buffer = (model.vis.global_.offwidth, model.vis.global_.offheight)
        if width > buffer[0] or height > buffer[1]:
            raise ValueError(
                f"video size {width}x{height} exceeds the model's offscreen buffer {buffer[0]}x{buffer[1]} "
                "(raise <visual><global offwidth=... offheight=...> in the MJCF)"
            )
        if width % 2 or height % 2:
            raise ValueError(f"video size {width}x{height}: width and height must be even for H.264's yuv420p")
        self.model, self.width, self.height = model, width, height
        self._gl = _gl_context_class(gl_backend())(width, height)
        self._gl.make_current()
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        self._option = mujoco.MjvOption()
        for group in hidden_geom_groups:
            self._option.geomgroup[group] = 0
        self._camera = mujoco.MjvCamera()
        if camera is None:
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
            self._camera.lookat[:] = lookat
            self._camera.distance, self._camera.azimuth, self._camera.elevation = distance, azimuth, elevation
        else:
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._camera.fixedcamid = model.camera(camera).id
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._viewport = mujoco.MjrRect(0, 0, width, height)

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """The current scene of `data` as (height, width, 3) uint8 RGB, top row first."""
        self._gl.make_current()
        mujoco.mjv_updateScene(
            self.model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._viewport, self._scene, self._context)
        pixels = np.empty((self.height, self.width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(pixels, None, self._viewport, self._context)
        return np.flipud(pixels).copy()  # OpenGL's first row is the bottom one

    def close(self) -> None:
        """Free the GL context now; relying on garbage collection at interpreter exit makes EGL complain."""
        if self._gl is not None:
            self._context.free()
            self._gl.free()
            self._gl = None


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, fps: float) -> int:
    """Encode (H, W, 3) uint8 RGB frames as H.264 into `path`; returns the number of frames written.

    Frames are consumed one at a time, so a generator keeps memory flat for long episodes. PyAV is
    imported here, not with the module: only runs that write videos need FFmpeg.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"{path}: frame {written} must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
            if written == 0:
                stream.height, stream.width = frame.shape[:2]
            elif frame.shape[:2] != (stream.height, stream.width):
                raise ValueError(
                    f"{path}: frame {written} is {frame.shape[1]}x{frame.shape[0]}, "
                    f"the first was {stream.width}x{stream.height}"
                )
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            written += 1
        if written == 0:
            raise ValueError(f"{path}: no frames to write")
        container.mux(stream.encode())  # flush the encoder's buffered frames
    return written


def render_problem(task: Task) -> str | None:
    """Why `task` cannot render videos here, in one line, or None when it can.

    One cheap check before an evaluation that asks for videos: make one environment with
    `render_mode="rgb_array"`, reset it and render a frame. A task may not take the argument, may
    refuse the mode, or may fail to open a GL context on this machine; finding out here lets the
    caller evaluate once without videos instead of failing, or evaluating twice.
    """
    try:
        env = task.make_env(render_mode="rgb_array")
    except Exception as exc:  # any failure means "cannot render"; the reason goes into the message
        return f"task '{task.spec.name}' cannot make an environment with render_mode='rgb_array': {_first_line(exc)}"
    try:
        env.reset(seed=0)
        frame = env.render()
    except Exception as exc:
        return f"task '{task.spec.name}' failed to render a frame: {_first_line(exc)}"
    finally:
        env.close()
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        found = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        return f"task '{task.spec.name}' renders {found}, not an (H, W, 3) uint8 frame"
    return None


def _first_line(exc: Exception) -> str:
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def read_mp4_frames(path: str | Path) -> np.ndarray:
    """Decode every frame of a video as (T, H, W, 3) uint8 RGB (for checks and tests)."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def record_episode(
    env: gym.Env, act: Callable[[np.ndarray], np.ndarray], seed: int, max_steps: int | None = None
) -> list[np.ndarray]:
    """Frames of one episode: the reset state, then one frame after each step until the episode ends.

    `env` must have been made with `render_mode="rgb_array"`; `act` maps an observation to an action.
    """
    if env.render_mode != "rgb_array":
        raise ValueError(f"record_episode needs an env made with render_mode='rgb_array', got {env.render_mode!r}")
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    steps = 0
    while max_steps is None or steps < max_steps:
        obs, _, terminated, truncated, _ = env.step(act(obs))
        frames.append(env.render())
        steps += 1
        if terminated or truncated:
            break
    return frames

