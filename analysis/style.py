"""The look shared by every figure: fixed method colours and order, labels, tick formats.

A method has the same colour in every figure (EXPO red, drawn on top); sweep values (Fig. 9: N,
Fig. 10: beta, Fig. 7: number of demos) get colours along a sequential colour map in the order of
their numeric value.
"""
from __future__ import annotations

import re
import zlib
from typing import Optional, Sequence

from matplotlib import colormaps
from matplotlib.colors import to_hex, to_rgb

EXPO_COLOR = "#d62728"

# Keys are normalised method names (lower case, "-" and " " -> "_"); unknown methods get a stable
# colour from FALLBACK_COLORS.
METHOD_COLORS: dict[str, str] = {
    "expo": EXPO_COLOR,
    "expo_no_edit": "#ff7f0e",
    "expo_no_otf_backup": "#9467bd",
    # Not a darker EXPO red: Fig. 7 draws the two side by side, they must not read as one method.
    "expo_entropy": "#b8860b",
    "expo_entropy_backup": "#b8860b",
    "rlpd": "#1f77b4",
    "idql": "#2ca02c",
    "dipo": "#8c564b",
    "qsm": "#e377c2",
    "calql": "#17becf",
    "cal_ql": "#17becf",
    "calql_sac": "#0b6e7a",
    "dac": "#bcbd22",
    "pa_rl": "#393b79",
    "parl": "#393b79",
    "sac": "#637939",
    "bc": "#4d4d4d",
}
FALLBACK_COLORS = ["#7b4173", "#ad494a", "#3182bd", "#31a354", "#756bb1", "#e6550d",
                   "#636363", "#843c39", "#5254a3", "#8ca252", "#bd9e39", "#a55194"]
# Legend / drawing order of the known methods; unknown ones follow alphabetically.
METHOD_ORDER = ["expo", "expo_entropy", "expo_entropy_backup", "expo_no_otf_backup",
                "expo_no_edit", "rlpd", "idql", "dipo", "qsm", "calql", "cal_ql", "calql_sac",
                "dac", "pa_rl", "parl", "sac", "bc"]
# How the paper names the methods in legends.
METHOD_NAMES = {
    "expo": "EXPO", "expo_no_edit": "EXPO, no edits", "expo_no_otf_backup": "EXPO, no OTF backup",
    "expo_entropy_backup": "EXPO + entropy backup", "rlpd": "RLPD", "idql": "IDQL",
    "dipo": "DIPO", "qsm": "QSM", "calql": "Cal-QL", "calql_sac": "Cal-QL + SAC",
    "dac": "DAC", "parl": "PA-RL", "bc": "Imitation (BC)",
}
# Sweep variants: "<name><number>", e.g. N16, beta0.05, demos50.
SWEEP_NAMES = {"N": "N", "beta": "\N{GREEK SMALL LETTER BETA}", "demos": "demos"}
_VARIANT = re.compile(r"^([A-Za-z_]+?)(-?\d+(?:\.\d*)?(?:[eE]-?\d+)?)$")

# Panel titles: benchmark and task in words, instead of the protocol's task ids.
TASK_NAMES = {
    "antmaze-medium-play-v2": "AntMaze medium-play",
    "antmaze-medium-diverse-v2": "AntMaze medium-diverse",
    "antmaze-large-play-v2": "AntMaze large-play",
    "antmaze-large-diverse-v2": "AntMaze large-diverse",
    "pen-binary-v0": "Adroit pen (binary)",
    "door-binary-v0": "Adroit door (binary)",
    "relocate-binary-v0": "Adroit relocate (binary)",
    "lift": "Robomimic Lift",
    "can": "Robomimic Can",
    "square": "Robomimic Square",
    "threading": "MimicGen Threading",
    "stack": "MimicGen Stack",
    "pendulum": "Pendulum-v1 (canary)",
}

METRIC_LABELS = {
    "success_rate": "Success rate",
    "success": "Success rate",
    "percent_solved_steps": "Normalized return",
    "return": "Return",
}


def norm(method: str) -> str:
    return method.strip().lower().replace("-", "_").replace(" ", "_")


def method_color(method: str) -> str:
    """The fixed colour of a method (stable across figures and runs of this script)."""
    key = norm(method)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return FALLBACK_COLORS[zlib.crc32(key.encode()) % len(FALLBACK_COLORS)]


def method_sort_key(method: str):
    key = norm(method)
    if key in METHOD_ORDER:
        return (0, METHOD_ORDER.index(key), key)
    return (1, 0, key)


def task_sort_key(task: str):
    """Tasks in the paper's order (expo/protocol.py: AntMaze, Adroit, Robomimic, MimicGen), then
    any other task alphabetically."""
    from expo.protocol import TASKS

    order = list(TASKS)
    return (0, order.index(task), task) if task in order else (1, 0, task)


def task_name(task: str) -> str:
    """Readable panel title of a task ("square" -> "Robomimic Square"); unknown ids unchanged."""
    return TASK_NAMES.get(task, task)


def natural_sort_key(text: str):
    """Numbers inside names compare as numbers: fig3 < fig10 (as text, "fig10" < "fig3")."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part]


def folder_title(folder: str) -> str:
    """"fig3" -> "Fig. 3"; any other results folder keeps its name."""
    m = re.fullmatch(r"fig(\d+)", folder)
    return f"Fig. {m.group(1)}" if m else folder


def label_sort_key(label: str):
    """Order of run labels: by method (`method_sort_key`), then by the swept value of
    <method>-<name><number> labels numerically (N2 < N8 < N16), then by name."""
    base, _, variant = label.partition("-")
    parsed = parse_variant(variant)
    return (method_sort_key(base), (0, parsed[0], parsed[1]) if parsed else (1, variant, 0.0))


def method_name(method: str) -> str:
    """Legend name: the paper's name of a known method, else the directory label."""
    return METHOD_NAMES.get(norm(method), method)


def is_expo(method: str) -> bool:
    return norm(method) == "expo"


def parse_variant(variant: str) -> Optional[tuple[str, float]]:
    """"N16" -> ("N", 16.0), "beta0.05" -> ("beta", 0.05); None when not <name><number>."""
    m = _VARIANT.match(variant or "")
    return (m.group(1), float(m.group(2))) if m else None


def format_number(v: float) -> str:
    return f"{v:g}"


def variant_label(variant: str) -> str:
    """"N16" -> "N=16", "beta0.05" -> "β=0.05"; other variants unchanged."""
    parsed = parse_variant(variant)
    if parsed is None:
        return variant
    name, value = parsed
    return f"{SWEEP_NAMES.get(name, name)}={format_number(value)}"


def sweep_colors(values: Sequence[float]) -> dict[float, str]:
    """Colours along a sequential map (light to dark) for sorted sweep values."""
    values = sorted(set(values))
    cmap = colormaps["viridis"]
    if len(values) == 1:
        return {values[0]: to_hex(cmap(0.35))}
    return {v: to_hex(cmap(0.9 * i / (len(values) - 1))) for i, v in enumerate(values)}


def lighten(color: str, amount: float) -> str:
    """`color` mixed with white: amount 0 keeps it, 1 gives white."""
    return to_hex([c + (1.0 - c) * amount for c in to_rgb(color)])


# Variants drawn next to their method (EXPO on 3 demos, EXPO with N = 8 beside EXPO): the k-th
# variant of a method gets a paler shade of its colour and a line style, both cycling, so that up to
# 15 variants of one method differ in the legend (5 styles x 3 shades).
VARIANT_SHADES = (0.25, 0.42, 0.58)
VARIANT_LINESTYLES = {
    "curve": ("--", "-.", ":", (0, (6, 1.5, 1, 1.5, 1, 1.5)), (0, (10, 3))),
    "hline": (":", "-.", (0, (6, 1.5, 1, 1.5, 1, 1.5)), (0, (10, 3)), (0, (1, 3))),
}


def variant_style(color: str, kind: str, rank: int) -> tuple[str, object]:
    """(colour, line style) of the `rank`-th variant of a method whose colour is `color`; `kind` is
    the series kind (an imitation level, "hline", is dashed itself, so its variants are not)."""
    styles = VARIANT_LINESTYLES["hline" if kind == "hline" else "curve"]
    return (lighten(color, VARIANT_SHADES[rank % len(VARIANT_SHADES)]),
            styles[rank % len(styles)])


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " ").capitalize())


def format_steps(x: float, _pos=None) -> str:
    """Tick label for an env-step count: 0, 250k, 1M, 1.5M."""
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:g}M"
    if ax >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def seeds_label(name: str, counts: Sequence[int], unit: str = "seed") -> str:
    """Legend text, e.g. "EXPO (3 seeds)"; "EXPO (2-3 seeds)" when panels differ; the name alone for a
    reference that counts nothing (unit "")."""
    if not unit:
        return name
    lo, hi = min(counts), max(counts)
    n = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{name} ({n} {unit}{'' if hi == 1 else 's'})"
