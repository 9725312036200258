"""Fig. 11: environment pictures rendered offscreen, and how the report states a failure."""
from __future__ import annotations

import ctypes.util
import json

import pytest

from analysis.env_pictures import STATUS_FILE, render_in_subprocess
from analysis.report import fig11_section

HAS_HEADLESS_GL = bool(ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa"))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_HEADLESS_GL, reason="neither libEGL nor libOSMesa is installed")
def test_render_lift_and_threading(tmp_path):
    """Lift and the suite's own MimicGen Threading (no mimicgen install) both render."""
    status = render_in_subprocess(tmp_path, keys=["lift", "threading"], size=96, timeout=600)
    assert list(status["rendered"]) == ["lift", "threading"] and not status["failed"], status
    import matplotlib.image

    for key in ("lift", "threading"):
        picture = tmp_path / f"fig11_{key}.png"
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(picture)
        assert img.shape[:2] == (96, 96) and img[..., :3].std() > 0.02     # not a blank frame
    assert (tmp_path / "fig11.png").is_file() and (tmp_path / "fig11.pdf").is_file()
    assert json.loads((tmp_path / STATUS_FILE).read_text())["rendered"]["lift"]["file"] == \
        "fig11_lift.png"


def test_report_states_why_fig11_is_not_rendered(tmp_path):
    class Inputs:
        env_pictures = {"rendered": {}, "failed": {"lift": "Robomimic Lift: RuntimeError: x"},
                        "error": "MUJOCO_GL=egl: exit 1: no display | MUJOCO_GL=osmesa: exit 1"}
    text = "\n".join(fig11_section(Inputs()))
    assert "Not rendered: MUJOCO_GL=egl: exit 1: no display | MUJOCO_GL=osmesa" in text
    assert "- Robomimic Lift: RuntimeError: x" in text
    assert "![Fig. 11]" not in text
