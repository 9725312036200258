"""Offscreen pictures of the suite's environments with MuJoCo: the camera of each domain, the frames
of evaluation episodes (`python -m expo.evaluate <run_dir> video=true`) and writing them as mp4.

MuJoCo renders without a display through a headless OpenGL backend, chosen by MUJOCO_GL when mujoco
is first imported: `egl` (libEGL: an NVIDIA driver on a GPU node, or Mesa's libegl1 on a CPU
machine, as here) or `osmesa` (Mesa's software libosmesa6). `use_headless_gl` picks one before the
simulators are imported. Videos are written with OpenCV (opencv-python, which robosuite already
installs): VP9 in an .mp4 file, which browsers and common players show; MPEG-4 part 2 where
OpenCV's build has no VP9 encoder.
"""
from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

import numpy as np

GL_BACKENDS = ("egl", "osmesa")
CODECS = ("vp09", "mp4v")  # OpenCV fourcc codes, the first that opens is used


class RenderUnavailable(RuntimeError):
    """Offscreen rendering cannot run here: the message is one line naming what is needed."""


NEEDS = ("video=true needs headless OpenGL for MuJoCo: MUJOCO_GL=egl (libEGL: the NVIDIA driver of a "
         "GPU node, or Mesa's, `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri`) or "
         "MUJOCO_GL=osmesa (`apt-get install libosmesa6`)")


def headless_gl() -> str | None:
    """The MUJOCO_GL backend to render with: the one set in the environment, else egl where libEGL
    is installed, else osmesa where libOSMesa is; None when there is none."""
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen:
        return chosen
    if ctypes.util.find_library("EGL"):
        return "egl"
    if ctypes.util.find_library("OSMesa"):
        return "osmesa"
    return None


def use_headless_gl() -> str:
    """Set MUJOCO_GL (and PyOpenGL's platform) for offscreen rendering; call before mujoco is
    imported (it fixes its backend then). Returns the backend; RenderUnavailable when none."""
    gl = headless_gl()
    if gl is None:
        raise RenderUnavailable(f"no headless OpenGL library found (neither libEGL nor libOSMesa); {NEEDS}")
    if "mujoco" in sys.modules and os.environ.get("MUJOCO_GL", "").strip().lower() != gl:
        raise RenderUnavailable(f"mujoco was imported before MUJOCO_GL={gl} was set; set it in the "
                                f"environment of the process")
    os.environ["MUJOCO_GL"] = gl
    os.environ.setdefault("PYOPENGL_PLATFORM", gl)
    return gl


def scene(env):
    """(model, data, camera) of a suite env: robosuite's front camera, a free camera above the
    maze for AntMaze, a free camera on the hand for Adroit."""
    import mujoco

    u = env.unwrapped
    if hasattr(u, "raw"):                                   # robosuite (robomimic / MimicGen)
        sim = u.raw.sim
        return sim.model._model, sim.data._data, "frontview"
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    if hasattr(u, "ant"):                                   # AntMaze: look down on the maze
        model, data = u.ant.model, u.ant.data
        azimuth, elevation, distance = 90.0, -70.0, 1.8 * model.stat.extent
        cam.lookat[:] = model.stat.center
    else:                                                   # Adroit: the hand and its object
        model, data = u.model, u.data
        azimuth, elevation, distance = 135.0, -30.0, 0.9
        mujoco.mj_forward(model, data)
        cam.lookat[:] = data.body("palm").xpos + [0.0, 0.1, -0.1]
    cam.distance = distance
    cam.azimuth, cam.elevation = azimuth, elevation
    return model, data, cam


def frames_per_second(env) -> float:
    """Simulated time per env step, as frames per second: robosuite's control frequency, else the
    env's render_fps, else 20."""
    u = env.unwrapped
    if hasattr(u, "raw") and getattr(u.raw, "control_freq", None):
        return float(u.raw.control_freq)
    return float((getattr(u, "metadata", None) or {}).get("render_fps") or 20)


class FrameRecorder:
    """An env (reset(seed=...), step(action), as expo/env_pool.py's LocalEnvs uses it) that keeps an
    RGB frame (size x size x 3, uint8) after every reset and step: evaluating through it records
    exactly the episodes evaluated."""

    def __init__(self, env, size: int = 256):
        self.env, self.size, self.frames = env, size, []
        self._renderer = self._model = None

    def _frame(self) -> None:
        import mujoco

        model, data, camera = scene(self.env)
        if self._renderer is not None and model is not self._model:  # a reset that rebuilt the model
            self._renderer.close()
            self._renderer = None
        if self._renderer is None:
            self._model = model
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.size)
            model.vis.global_.offheight = max(model.vis.global_.offheight, self.size)
            try:
                self._renderer = mujoco.Renderer(model, self.size, self.size)
            except Exception as e:  # noqa: BLE001 - whatever the GL backend raises, say what is needed
                raise RenderUnavailable(
                    f"offscreen rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL', '')} "
                    f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); {NEEDS}") from e
        mujoco.mj_forward(model, data)
        self._renderer.update_scene(data, camera=camera)
        self.frames.append(self._renderer.render().copy())

    def reset(self, seed=None, **kwargs):
        out = self.env.reset(seed=seed, **kwargs)
        self._frame()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._frame()
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.env.close()


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write RGB frames (uint8, all of one size) as an mp4 file, atomically (a temporary file in the
    same folder, then a rename). Returns the path."""
    import cv2

    path = Path(path)
    if not frames:
        raise ValueError("no frames to write")
    height, width = frames[0].shape[:2]
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    for codec in CODECS:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if writer.isOpened():
            break
        writer.release()
    else:
        tmp.unlink(missing_ok=True)
        raise RenderUnavailable(f"OpenCV cannot write mp4 here (codecs tried: {', '.join(CODECS)})")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV takes BGR
    finally:
        writer.release()
    os.replace(tmp, path)
    return path
