"""Where datasets live on disk."""
from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """The suite's data root: $EXPO_DATA_ROOT if set (and non-empty), else ~/.cache/expo-suite.

    Generated (embedded) datasets are written here, and downloaded datasets are looked up here.
    The directory is not created by this function.
    """
    env = os.environ.get("EXPO_DATA_ROOT", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "expo-suite"
