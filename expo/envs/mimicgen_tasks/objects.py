"""MimicGen's Threading objects, the needle and the ring tripod, as robosuite 1.5 CompositeObjects.

Both are boxes / capsules placed inside a bounding box (`total_size`, half-sizes) by their position
relative to the box's lower corner, which is how robosuite's CompositeObject reads
`locations_relative_to_center=False` (unchanged between robosuite 1.4.1 and 1.5.1). The numbers are
MimicGen's (NVlabs/mimicgen at commit 72bd767c255545f462e7ccfb2731f2e5d4c1d9bb):
  - needle: MimicGen mimicgen/models/robosuite/objects/composite/needle.py:61-101;
  - ring tripod: MimicGen mimicgen/models/robosuite/objects/composite/ring_tripod.py:61-175.
The code below is this suite's own; only those dimensions, names and physical parameters are taken.

Geom centres in the object's frame (what the success check and the scripted expert rely on):
  needle: the thin bar spans y in [-0.08, 0.04] around x = z = 0 (its centre at y = -0.02), the 4 cm
          handle cube spans y in [0.04, 0.08];
  tripod: the ring's 20 unit boxes (1 cm deep along x) frame a 16 x 16 mm opening in the (y, z) plane
          centred at (0, 0, 0.088); the 1 cm bar goes through it along the object's x axis.
"""
from __future__ import annotations

import numpy as np
from robosuite.models.objects import CompositeObject
from robosuite.utils.mjcf_utils import CustomMaterial

# Friction of the needle bar and of the ring: low, so that the bar slides through the ring
# (needle.py:86, ring_tripod.py:113). Other geoms keep robosuite's default friction.
LOW_FRICTION = (0.3, 5e-3, 1e-4)
DENSITY = 100.0  # needle.py:66, ring_tripod.py:68


def _wood(texture: str, name: str) -> CustomMaterial:
    """The wood material MimicGen gives its objects (needle.py:36-50, ring_tripod.py:37-51)."""
    return CustomMaterial(
        texture=texture, tex_name=name, mat_name=f"{name}_mat", tex_attrib={"type": "cube"},
        mat_attrib={"texrepeat": "1 1", "specular": "0.4", "shininess": "0.1"},
    )


class _GeomList:
    """Collects CompositeObject's per-geom argument lists, one geom at a time."""

    def __init__(self, material: str):
        self.material = material
        self.args = {k: [] for k in ("geom_types", "geom_locations", "geom_quats", "geom_sizes", "geom_names",
                                     "geom_rgbas", "geom_materials", "geom_frictions")}

    def add(self, kind: str, corner_location, size, name: str, quat=(1.0, 0.0, 0.0, 0.0), friction=None):
        for key, value in (("geom_types", kind), ("geom_locations", tuple(float(v) for v in corner_location)),
                           ("geom_quats", tuple(float(v) for v in quat)), ("geom_sizes", tuple(size)),
                           ("geom_names", name), ("geom_rgbas", None), ("geom_materials", self.material),
                           ("geom_frictions", friction)):
            self.args[key].append(value)


class NeedleObject(CompositeObject):
    """A 12 cm long, 1 cm thick bar with a 4 cm cube handle at one end (MimicGen's needle)."""

    TOTAL_SIZE = (0.02, 0.08, 0.02)   # needle.py:62
    BAR_SIZE = (0.005, 0.06, 0.005)   # needle.py:71
    HANDLE_SIZE = (0.02, 0.02, 0.02)  # needle.py:72

    def __init__(self, name: str):
        geoms = _GeomList("darkwood_mat")
        bar, handle = self.BAR_SIZE, self.HANDLE_SIZE
        # The bar sits against the handle's far (x, z) faces' centre line (needle.py:79) ...
        geoms.add("box", (handle[0] - bar[0], 0.0, handle[2] - bar[2]), bar, "needle", friction=LOW_FRICTION)
        # ... and the handle just beyond the bar's end along y (needle.py:94).
        geoms.add("box", (0.0, 2.0 * bar[1], 0.0), handle, "handle")
        super().__init__(name=name, total_size=list(self.TOTAL_SIZE), locations_relative_to_center=False,
                         obj_types="all", density=DENSITY, **geoms.args)
        self.append_material(_wood("WoodDark", "darkwood"))


def _ring_pattern() -> np.ndarray:
    """[z, x, y] occupancy of the ring's unit boxes: a 6 x 6 square frame, one box thick (ring_tripod.py:77-79)."""
    pattern = np.ones((6, 1, 6))
    pattern[1:5, 0, 1:5] = 0.0
    return pattern


def _tilt_quat(axis: np.ndarray, angle: float) -> tuple[float, ...]:
    """(w, x, y, z) of a rotation by `angle` about the unit vector `axis`."""
    axis = axis / np.linalg.norm(axis)
    return (float(np.cos(angle / 2)), *(float(v) for v in np.sin(angle / 2) * axis))


class RingTripodObject(CompositeObject):
    """Three tilted capsule legs, a base plate, a thin post and on top a square ring (MimicGen's ring tripod)."""

    TOTAL_SIZE = (0.05, 0.05, 0.1)        # ring_tripod.py:62
    UNIT_SIZE = (0.005, 0.002, 0.002)     # ring_tripod.py:76, one box of the ring
    LEG_RADIUS, LEG_HALF_LENGTH = 0.01, 0.03  # ring_tripod.py:118-119
    LEG_TILT = -np.pi / 6.0               # ring_tripod.py:128, towards the centre
    BASE_THICKNESS, POST_HALF_WIDTH = 0.005, 0.005  # ring_tripod.py:154-155
    # Contact softness of the whole tripod, so the thin ring wall does not let the bar through (ring_tripod.py:69-71)
    SOLREF, SOLIMP = (0.02, 1.0), (0.9, 0.95, 0.001)

    def __init__(self, name: str):
        total = np.array(self.TOTAL_SIZE)
        unit = np.array(self.UNIT_SIZE)
        pattern = _ring_pattern()
        nz, nx, ny = pattern.shape
        # The ring's half-extent per axis; ring_size[1] is the success radius (threading.py:471).
        self.ring_size = unit * np.array([nx, ny, nz])
        ring_corner = np.array([total[0] - self.ring_size[0], total[1] - self.ring_size[1],
                                2.0 * (total[2] - self.ring_size[2])])  # ring_tripod.py:86-90
        geoms = _GeomList("lightwood_mat")
        self.num_ring_geoms = 0
        for k in range(nz):
            for i in range(nx):
                for j in range(ny):
                    if pattern[k, i, j] > 0:
                        where = ring_corner + 2.0 * unit * np.array([i, j, k])
                        geoms.add("box", where, tuple(unit), f"ring_{self.num_ring_geoms}", friction=LOW_FRICTION)
                        self.num_ring_geoms += 1
        # Legs at three corners of the base, each tilted about the horizontal axis normal to its direction
        # towards the tripod's centre (ring_tripod.py:120-151).
        r, h = self.LEG_RADIUS, self.LEG_HALF_LENGTH
        legs = [(0.0, 0.0, 0.0), (0.0, 2 * total[1] - 2 * r, 0.0), (2 * total[0] - 2 * r, total[1] - r, 0.0)]
        centre = np.array([total[0], total[1], 0.0])
        for n, corner in enumerate(legs):
            foot = np.array(corner) + np.array([r, r, 0.0])
            foot[2] = 0.0
            inward = (centre - foot) / np.linalg.norm(centre - foot)
            axis = np.cross(inward, np.array([0.0, 0.0, 1.0]))
            geoms.add("capsule", corner, (r, h), f"tripod_{n}", quat=_tilt_quat(axis, self.LEG_TILT))
        # Base plate on the legs and the post up to the ring (ring_tripod.py:153-175).
        base, post = self.BASE_THICKNESS, self.POST_HALF_WIDTH
        geoms.add("box", (0.0, 0.0, 2 * (r + h)), (total[0], total[1], base), "post_0")
        geoms.add("box", (total[0] - post, total[1] - post, 2 * (r + h + base)),
                  (post, post, total[2] - self.ring_size[2] - base - r - h), "post_1")
        super().__init__(name=name, total_size=list(self.TOTAL_SIZE), locations_relative_to_center=False,
                         obj_types="all", density=DENSITY, solref=self.SOLREF, solimp=self.SOLIMP, **geoms.args)
        self.append_material(_wood("WoodLight", "lightwood"))
