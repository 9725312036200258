"""MimicGen's Threading_D0 and Stack_D0, written in this suite for robosuite 1.5 (no mimicgen install).

Importing this package defines the two env classes, which robosuite registers under their class names
(robosuite's EnvMeta), so `robosuite.make("Threading_D0", ...)` and `robosuite.make("Stack_D0", ...)` build
them, exactly as importing the `mimicgen` package registers its own. What they take from MimicGen (and
robosuite 1.4.1) is listed per file, with file:line at MIMICGEN_COMMIT; docs/MIMICGEN.md collects it.
"""
from expo.envs.robomimic import _import_robosuite

_import_robosuite()  # robosuite's import-time log noise filtered before the env modules import it

from expo.envs.mimicgen_tasks.stack_d0 import Stack_D0  # noqa: E402
from expo.envs.mimicgen_tasks.threading_d0 import Threading_D0  # noqa: E402

# The MimicGen commit whose task definitions were read (github.com/NVlabs/mimicgen).
MIMICGEN_COMMIT = "72bd767c255545f462e7ccfb2731f2e5d4c1d9bb"
ENVS = {"Threading_D0": Threading_D0, "Stack_D0": Stack_D0}

__all__ = ["ENVS", "MIMICGEN_COMMIT", "Stack_D0", "Threading_D0"]
