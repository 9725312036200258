"""One declarative spec per figure: a module in this folder defining GRID (plain data).

Keys of a GRID:
  description     one line
  tasks           task names (expo/protocol.py TASKS)
  seeds           a count: seeds 0..k-1
  setting         online | offline_to_online
  scale           paper | mini (sizes only; `scale=mini` on the command line overrides it)
  overrides       run-config keys applied to every run (e.g. {"steps": 7_500})
  task_overrides  {task: {run key: value}}: applied to every run of that task (e.g. the paper's
                  own Lift file); optional
and exactly one of
  methods         simple form: one arm per method, no variant
  arms            a list of {"method": m, "variant": label ("" for none), "overrides": {...},
                  "task_overrides": {task: {...}}}: the runs of a sweep. An arm's overrides and
                  task_overrides are what DEFINE it (Fig. 9's agent.N, Fig. 7's dataset.num_demos),
                  so a command-line value for one of those keys is an error rather than silently
                  collapsing the sweep. Its runs live in results/<figure>/<task>/<method>-<variant>/.
or, for a figure drawn from other figures' runs,
  derived_from    [figure, ...]: no runs of its own; expanding it gives the union of those grids'
                  runs (each in its own figure folder), so a dry run reports their counts.

Precedence, later winning: the scale preset < the grid's overrides < its task_overrides < the
command line's run keys < the arm's (variant, overrides, task_overrides) < the method preset
(expo/config.py). Each module's docstring records the choices the paper leaves open.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

SPEC_KEYS = {"description", "tasks", "seeds", "setting", "scale", "overrides", "task_overrides",
             "methods", "arms", "derived_from"}
ARM_KEYS = {"method", "variant", "overrides", "task_overrides"}
# A variant becomes part of a directory name, after "<method>-".
_VARIANT = re.compile(r"^[A-Za-z0-9_.]*$")


def _natural(name: str) -> tuple:
    """fig3 < fig10: digits compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def available() -> list[str]:
    return sorted((m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")),
                  key=_natural)


def load(name: str) -> dict:
    names = available()
    if name not in names:
        raise KeyError(f"unknown figure {name!r}; valid figures: {', '.join(names)} (figure= names a "
                       f"grid of runs to launch; `make figures` draws the figures from results/)")
    spec = dict(importlib.import_module(f"{__name__}.{name}").GRID)
    validate(spec, name)
    return spec


def _valid_run_keys(method: str) -> set[str]:
    from expo import config as config_lib

    module = config_lib.agent_module(method)
    return set(config_lib.flatten({**config_lib.RUN_DEFAULTS, "agent": module.get_config()}))


def arms_of(spec: dict) -> list[dict]:
    """The grid's arms, the simple form (methods) included, each with every key present."""
    if "arms" in spec:
        return [{"variant": "", "overrides": {}, "task_overrides": {}, **arm} for arm in spec["arms"]]
    return [{"method": m, "variant": "", "overrides": {}, "task_overrides": {}} for m in spec["methods"]]


def label(arm: dict) -> str:
    """An arm's run-directory name: the method, or <method>-<variant>."""
    from expo.logger import run_label

    return run_label(arm)


def validate(spec: dict, name: str) -> None:
    """One-line ConfigError naming the grid and the fix for a malformed GRID."""
    from expo import config as config_lib, protocol

    def bad(message: str) -> None:
        raise config_lib.ConfigError(f"grid {name}: {message}")

    unknown = set(spec) - SPEC_KEYS
    if unknown:
        bad(f"unknown GRID key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(SPEC_KEYS))}")
    if "derived_from" in spec:
        others = set(spec) - {"description", "derived_from"}
        if others:
            bad(f"a derived grid has only description and derived_from, not {', '.join(sorted(others))}")
        names = available()
        for source in spec["derived_from"]:
            if source not in names or source == name:
                bad(f"derived_from names {source!r}; valid figures: {', '.join(n for n in names if n != name)}")
        return
    missing = {"tasks", "seeds", "setting", "scale", "overrides"} - set(spec)
    if missing:
        bad(f"missing GRID key(s) {', '.join(sorted(missing))}")
    if ("methods" in spec) == ("arms" in spec):
        bad("give exactly one of methods (one arm per method) or arms (a sweep)")
    if not isinstance(spec["seeds"], int) or isinstance(spec["seeds"], bool) or spec["seeds"] < 1:
        bad(f"seeds must be a count >= 1, got {spec['seeds']!r}")
    if spec["setting"] not in ("online", "offline_to_online"):
        bad(f"setting must be online or offline_to_online, got {spec['setting']!r}")
    if spec["scale"] not in config_lib.SCALES:
        bad(f"unknown scale {spec['scale']!r}; valid scales: {', '.join(config_lib.SCALES)}")
    for task in spec["tasks"]:
        if task not in protocol.TASKS:
            bad(f"unknown task {task!r}; valid tasks: {', '.join(protocol.TASKS)}")
    if "arms" in spec:
        for arm in spec["arms"]:
            if set(arm) - ARM_KEYS or "method" not in arm:
                bad(f"an arm has keys {', '.join(sorted(arm))}; valid: method (required), "
                    f"{', '.join(sorted(ARM_KEYS - {'method'}))}")
    arms = arms_of(spec)
    for arm in arms:
        if arm["method"] not in config_lib.METHODS:
            bad(f"unknown method {arm['method']!r}; valid methods: {', '.join(sorted(config_lib.METHODS))}")
        if not _VARIANT.match(arm["variant"]):
            bad(f"variant {arm['variant']!r} of {arm['method']} may hold only letters, digits, '_' and '.'")
        valid = _valid_run_keys(arm["method"])
        shared = [spec["overrides"], *spec.get("task_overrides", {}).values()]
        own = [arm["overrides"], *arm["task_overrides"].values()]
        for overrides in shared + own:
            for key in overrides:
                if key not in valid or key in ("task", "method", "seed", "figure", "variant"):
                    bad(f"unknown or reserved override key {key!r} for {arm['method']}; a grid "
                        f"sets task/method/seed/figure/variant itself; valid keys: see expo/config.py")
        for task in [*spec.get("task_overrides", {}), *arm["task_overrides"]]:
            if task not in protocol.TASKS:
                bad(f"task_overrides names unknown task {task!r}; valid tasks: {', '.join(protocol.TASKS)}")
    labels = [label(arm) for arm in arms]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        bad(f"arms {', '.join(duplicates)} would share run directories; give them distinct variants")


def _as_list(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(str(x).strip() for x in items if str(x).strip()))


def _select_arms(spec: dict, name: str, wanted: list[str]) -> list[dict]:
    """methods= on the command line: with the simple form it replaces the method list (any method);
    with arms it selects arms by label (expo-N16) or by method (expo: every expo arm)."""
    from expo import config as config_lib

    if "arms" not in spec:
        return [{"method": m, "variant": "", "overrides": {}, "task_overrides": {}} for m in wanted]
    arms = arms_of(spec)
    chosen = []
    for item in wanted:
        matches = [a for a in arms if item in (label(a), a["method"])]
        if not matches:
            raise config_lib.ConfigError(
                f"figure {name} has no arm {item!r}; valid: {', '.join(label(a) for a in arms)} "
                f"(or a method: {', '.join(dict.fromkeys(a['method'] for a in arms))})")
        chosen += [a for a in matches if a not in chosen]
    return chosen


def expand(spec: dict, launcher: dict, run_overrides: dict) -> list[dict]:
    """One resolved run config per (task, arm, seed); `figure` = launcher["figure"] (the module).

    launcher: figure (required), tasks / methods / seeds (optional: replace or select, see
    _select_arms). A run key `task=X` / `method=X` means the same as `tasks=X` / `methods=X`: it
    selects from the grid instead of being overwritten by the grid's own list."""
    from expo import config as config_lib
    from expo.logger import run_dir_for

    name = str(launcher["figure"])
    if "derived_from" in spec:
        runs = []
        for source in spec["derived_from"]:
            runs += expand(load(source), {**launcher, "figure": source}, run_overrides)
        return runs

    run_overrides = dict(run_overrides)
    for single, plural in (("task", "tasks"), ("method", "methods")):
        if single in run_overrides:
            if plural in launcher:
                raise config_lib.ConfigError(f"give either {single}= or {plural}=, not both")
            launcher = {**launcher, plural: str(run_overrides.pop(single))}
    tasks = _as_list(launcher.get("tasks", spec["tasks"]))
    arms = _select_arms(spec, name, _as_list(launcher["methods"])) if "methods" in launcher else arms_of(spec)
    seeds = int(launcher.get("seeds", spec["seeds"]))
    if seeds < 1:
        raise config_lib.ConfigError(f"seeds must be >= 1, got {seeds}")

    runs = []
    for task in tasks:
        for arm in arms:
            defining = {**arm["overrides"], **arm["task_overrides"].get(task, {})}
            if arm["variant"]:
                defining["variant"] = arm["variant"]
            clash = sorted(set(defining) & set(run_overrides))
            if clash:
                raise config_lib.ConfigError(
                    f"{clash[0]} is what arm {label(arm)} of figure {name} sets for {task}; drop "
                    f"{clash[0]}= or run it outside the figure (figure=quickstart, or python -m expo.train)")
            for seed in range(seeds):
                overrides = {"setting": spec["setting"], "scale": spec["scale"], **spec["overrides"],
                             **spec.get("task_overrides", {}).get(task, {}), **run_overrides,
                             **defining, "task": task, "method": arm["method"], "seed": seed,
                             "figure": name}
                runs.append(config_lib.build_config(overrides))
    seen: dict = {}
    for cfg in runs:
        path = run_dir_for(cfg)
        if path in seen:
            raise config_lib.ConfigError(f"figure {name}: two runs share {path}; give their arms distinct variants")
        seen[path] = cfg
    return runs


def count_line(name: str, spec: dict, runs: list[dict]) -> str:
    """How a grid's runs multiply out, e.g. 'fig4: 12 tasks x 5 arms x 3 seeds = 180 runs'; a
    derived figure lists its sources and says it has no runs of its own."""
    if "derived_from" in spec:
        parts = [count_line(src, load(src), [c for c in runs if c["figure"] == src])
                 for src in spec["derived_from"]]
        return (f"{name}: derived from {', '.join(spec['derived_from'])} (no runs of its own; "
                f"{len(runs)} runs in all): " + "; ".join(parts))
    tasks = {c["task"] for c in runs}
    arms = {(c["method"], c["variant"]) for c in runs}
    seeds = {c["seed"] for c in runs}
    arm_word = "arm" if any(variant for _, variant in arms) else "method"
    if runs and len(tasks) * len(arms) * len(seeds) == len(runs):
        return (f"{name}: {_count(len(tasks), 'task')} x {_count(len(arms), arm_word)} x "
                f"{_count(len(seeds), 'seed')} = {_count(len(runs), 'run')}")
    return f"{name}: {_count(len(runs), 'run')}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
