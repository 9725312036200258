"""Fig. 11: pictures of the environments, rendered offscreen with MuJoCo.

    python -m analysis.env_pictures --out figures [--envs lift,can] [--size 360]

One picture per distinct environment (AntMaze play/diverse share a maze), from the suite's own env
makers (`expo.envs.make_env`) after a seeded reset, so the pictures show the simulators the runs
use. Writes ``<out>/fig11.png``, ``<out>/fig11.pdf`` (a grid with one titled picture per
environment), ``<out>/fig11_<env>.png`` per environment and ``<out>/fig11_status.json``:
{"rendered": {...}, "failed": {env: reason}, "gl": backend}.

OpenGL needs a headless backend: `render_in_subprocess` runs this module in a child process with
MUJOCO_GL=egl, then osmesa, since MuJoCo fixes its GL backend at import. An environment whose
simulator cannot be built (e.g. EXPO_MIMICGEN=package without the mimicgen package) is listed in
"failed" with the reason, never dropped.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

# (key, title, task): the task whose env is pictured (MimicGen's two: the suite's robosuite 1.5 envs,
# expo/envs/mimicgen_tasks, or MimicGen's own with EXPO_MIMICGEN=package).
PICTURES = [
    ("antmaze_medium", "AntMaze medium (play, diverse)", "antmaze-medium-play-v2"),
    ("antmaze_large", "AntMaze large (play, diverse)", "antmaze-large-play-v2"),
    ("pen", "Adroit pen-binary", "pen-binary-v0"),
    ("door", "Adroit door-binary", "door-binary-v0"),
    ("relocate", "Adroit relocate-binary", "relocate-binary-v0"),
    ("lift", "Robomimic Lift", "lift"),
    ("can", "Robomimic Can", "can"),
    ("square", "Robomimic Square", "square"),
    ("threading", "MimicGen Threading", "threading"),
    ("stack", "MimicGen Stack", "stack"),
]
GL_BACKENDS = ("egl", "osmesa")
STATUS_FILE = "fig11_status.json"


def render_task(task: str, size: int = 360):
    """An RGB picture (size x size x 3, uint8) of `task`'s environment after reset(seed=0)."""
    import mujoco

    from expo.envs import make_env
    from expo.protocol import get_task
    from expo.render import scene  # each domain's camera, shared with the videos of expo.evaluate

    env = make_env(get_task(task), 0)
    try:
        env.reset(seed=0)
        model, data, camera = scene(env)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, size)
        renderer = mujoco.Renderer(model, size, size)
        try:
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera)
            return renderer.render().copy()
        finally:
            renderer.close()
    finally:
        env.close()


def render_all(out_dir, keys: Optional[Sequence[str]] = None, size: int = 360) -> dict:
    """Render the pictures (all of PICTURES, or `keys`) into out_dir; return the status dict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.draw import atomic_savefig
    from expo.logger import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [p for p in PICTURES if keys is None or p[0] in keys]
    unknown = sorted(set(keys or ()) - {p[0] for p in PICTURES})
    if unknown:
        raise ValueError(f"unknown environment(s) {unknown}; valid: "
                         f"{', '.join(p[0] for p in PICTURES)}")
    images, failed = {}, {}
    for key, title, task in chosen:
        try:
            images[key] = (title, render_task(task, size))
        except Exception as e:  # noqa: BLE001 - a missing simulator is reported, not fatal
            failed[key] = f"{title}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    rendered = {}
    for key, (title, img) in images.items():
        path = out / f"fig11_{key}.png"
        tmp = out / f".fig11_{key}.tmp{os.getpid()}.png"
        plt.imsave(tmp, img)
        os.replace(tmp, path)
        rendered[key] = {"title": title, "file": path.name}
    if images:
        n = len(images)
        ncols = min(n, 4)
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 3.2 * nrows), squeeze=False,
                                 layout="constrained")
        for i, (title, img) in enumerate(images.values()):
            ax = axes[i // ncols][i % ncols]
            ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        for j in range(n, nrows * ncols):
            axes[j // ncols][j % ncols].set_visible(False)
        atomic_savefig(fig, out / "fig11.png", dpi=150)
        atomic_savefig(fig, out / "fig11.pdf")
        plt.close(fig)
    status = {"rendered": rendered, "failed": failed, "gl": os.environ.get("MUJOCO_GL", "")}
    atomic_write_text(out / STATUS_FILE, json.dumps(status, indent=2) + "\n")
    return status


def render_in_subprocess(out_dir, keys: Optional[Sequence[str]] = None, size: int = 360,
                         timeout: float = 600.0) -> dict:
    """Render in a child process with each headless GL backend in turn; return the status dict of
    the first backend that rendered anything, else {"rendered": {}, "failed": ..., "error": why}."""
    root = Path(__file__).resolve().parents[1]
    errors = []
    status: dict = {"rendered": {}, "failed": {}}
    for gl in GL_BACKENDS:
        env = dict(os.environ, MUJOCO_GL=gl, PYOPENGL_PLATFORM=gl,
                   PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "analysis.env_pictures", "--out", str(out_dir),
               "--size", str(size)] + (["--envs", ",".join(keys)] if keys else [])
        try:
            proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            errors.append(f"MUJOCO_GL={gl}: timed out after {timeout:.0f} s")
            continue
        status_path = Path(out_dir) / STATUS_FILE
        if proc.returncode == 0 and status_path.is_file():
            status = json.loads(status_path.read_text())
            if status["rendered"]:
                return status
            errors.append(f"MUJOCO_GL={gl}: nothing rendered ("
                          + "; ".join(status["failed"].values()) + ")")
        else:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            errors.append(f"MUJOCO_GL={gl}: exit {proc.returncode}: {tail}")
    status["error"] = " | ".join(errors)
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.env_pictures",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--envs", default=None,
                   help=f"comma-separated subset of {', '.join(k for k, _, _ in PICTURES)}")
    p.add_argument("--size", type=int, default=360, help="picture side in pixels (default 360)")
    args = p.parse_args(argv)
    keys = args.envs.split(",") if args.envs else None
    try:
        status = render_all(args.out, keys, args.size)
    except ValueError as e:
        p.error(str(e))
    for key, info in status["rendered"].items():
        print(f"rendered {key}: {info['file']}")
    for key, why in status["failed"].items():
        print(f"not rendered {key}: {why}")
    sys.stdout.flush()
    # MuJoCo's EGL context raises in its destructor at interpreter shutdown (after everything is
    # written); leaving without the shutdown-time garbage collection keeps that noise away.
    os._exit(0)


if __name__ == "__main__":
    main()
