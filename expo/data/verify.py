"""Checking the datasets on disk: `python -m expo.data verify [task|dataset]`.

A run that starts on a missing, truncated or different-release file fails hours later or, worse,
trains on the wrong data. verify answers "is every dataset I need here and the one the paper used?"
before any run: for each dataset it checks that its files exist, their size / sha256 when the registry
knows them, that the public loader (expo.data.load_entry, with the task's protocol spec, so the
observation / action widths and the recorded env are checked against expo/protocol.py, as a run
checks them) reads them, and that the facts recorded in the registry (entry.expected; a generated
entry's num_demos) match what is measured, like with like: FACTS says where each one is measured.

Statuses: ok | missing (not on disk: fetch or generate it) | malformed (the loader rejects it: replace
it) | mismatch (size, sha256, counts, widths or env differ from the registry) | unavailable (nothing
to fetch: no download registered, an optional loader not installed, or a task naming an unregistered
dataset). Nothing is generated, downloaded or written here; each row that is not ok says which command
fixes it (for a file that is present, `fetch --force`: plain `fetch` skips present files).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from expo.data.errors import DatasetError, DatasetMissing
from expo.data.fetch import datasets_for, minari_id, part_path, sha256_of
from expo.data.registry import DATASETS, ExternalDataset
from expo.protocol import TASKS

STATUSES = ("ok", "missing", "malformed", "mismatch", "unavailable")

# entry.expected key -> where verify measures it. "loaded": the arrays the loader returns, i.e. what a
# run trains on (transitions, episodes / demos, widths); "file": the format module's file_facts, raw
# counts of the files themselves (expo/data/__init__.py). A recorded fact that is not listed here is
# reported as a problem rather than silently skipped.
FACTS = {
    "transitions": "loaded", "episodes": "loaded", "demos": "loaded", "obs_dim": "loaded", "act_dim": "loaded",
    "rows": "file",                      # d4rl_hdf5: steps in the file, before time-out rows are dropped
    "file_demos": "file",                # robomimic_hdf5: demos in each file (a composed entry loads some)
    "env_name": "file",                  # robomimic_hdf5: env of the last file's env_args (the run's env)
    "expert_trajectories": "file", "expert_trajectory_length": "file", "bc_trajectories": "file",  # awac_npy
}
_LOADED = {"demos": "episodes"}  # expected key -> Row attribute, where the names differ


@dataclasses.dataclass
class Row:
    """One dataset's verdict. Counts are None when the data could not be loaded."""

    tasks: tuple[str, ...]
    dataset: str
    status: str
    transitions: Optional[int] = None
    episodes: Optional[int] = None
    obs_dim: Optional[int] = None
    act_dim: Optional[int] = None
    problems: list[str] = dataclasses.field(default_factory=list)  # one line each: what + the fix

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def verify(name: Optional[str] = None, check_hash: bool = True) -> list[Row]:
    """One Row per dataset `name` stands for (default / "all": the datasets of every task)."""
    return [verify_dataset(key, tasks, check_hash=check_hash)
            for key, tasks in datasets_for(name, everything="tasks").items()]


def verify_dataset(key: str, tasks: tuple[str, ...] = (), check_hash: bool = True) -> Row:
    row = Row(tasks=tasks, dataset=key, status="ok")

    def bad(status: str, problem: str) -> Row:
        if row.status == "ok":
            row.status = status  # the first problem found names the status
        row.problems.append(" ".join(problem.splitlines()))
        return row

    entry = DATASETS.get(key)
    if entry is None:
        return bad("unavailable", f"task(s) {', '.join(tasks)} name dataset {key!r}, which expo/data/registry.py "
                                  f"does not register; add it to DATASETS")
    if isinstance(entry, ExternalDataset) and entry.format == "minari":
        try:
            import minari  # noqa: F401
        except ImportError:
            return bad("unavailable", f"a Minari dataset and minari is not installed; `pip install minari` then "
                                      f"`minari download {minari_id(entry) or '<dataset id>'}`")
    elif isinstance(entry, ExternalDataset) and not entry.files:
        return bad("unavailable", f"no download is registered yet ({entry.description}); "
                                  f"add its files to expo/data/registry.py")
    else:
        _check_files(entry, check_hash, bad)
        if row.status != "ok":
            return row

    specs = [TASKS[t] for t in tasks]
    from expo.data import file_facts, load_entry

    try:
        data = load_entry(entry, specs[0] if specs else None)
        facts = file_facts(entry)
    except DatasetMissing as e:  # e.g. a Minari dataset, whose files verify does not list itself
        return bad("missing", str(e))
    except DatasetError as e:  # the loader's one line: the file, what is wrong and the command that fixes it
        return bad("malformed", str(e))
    except ImportError as e:
        return bad("unavailable", f"the loader for format {entry.format!r} cannot be imported ({e}); install what it names")

    obs, act = data["observations"], data["actions"]
    row.transitions = int(len(obs))
    row.episodes = int(data["episode_starts"].sum())
    row.obs_dim = int(obs.shape[1]) if obs.ndim == 2 else None
    row.act_dim = int(act.shape[1]) if act.ndim == 2 else None

    expected = dict(entry.expected) if isinstance(entry, ExternalDataset) else {"demos": entry.num_demos}
    for fact, value in expected.items():
        where = FACTS.get(fact)
        if where == "loaded" or (where == "file" and fact in facts):
            got = getattr(row, _LOADED.get(fact, fact)) if where == "loaded" else facts[fact]
            if _normal(got) != _normal(value):
                bad("mismatch", f"{_files_of(entry)}: {fact} is {_show(got)}, the registry expects {_show(value)} "
                                f"(a different release, or a file of another dataset?); fix: {entry.replace_hint()}")
        else:
            bad("mismatch", f"{key}: the registry records {fact}={value!r}, which verify cannot measure for "
                            f"format {entry.format!r}; fix: correct expo/data/registry.py or FACTS in expo/data/verify.py")
    for spec in specs:
        if (row.obs_dim, row.act_dim) != (spec.obs_dim, spec.act_dim):
            bad("mismatch", f"{_files_of(entry)}: obs/act dims {row.obs_dim}/{row.act_dim}, task {spec.name!r} expects "
                            f"{spec.obs_dim}/{spec.act_dim}; fix: {entry.replace_hint()}")
    return row


def _normal(value):
    """Registry values are written as tuples, measured ones may be lists: compare them alike."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _show(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return repr(value) if isinstance(value, str) else str(value)


def _files_of(entry) -> str:
    paths = entry.paths()
    return ", ".join(map(str, paths)) if paths else entry.key


def _check_files(entry, check_hash: bool, bad) -> None:
    """Presence, size and sha256 of each file of `entry` (what is known of them)."""
    files = entry.files if isinstance(entry, ExternalDataset) else ()
    for i, path in enumerate(entry.paths()):
        rf = files[i] if files else None
        if not path.is_file():
            if rf is not None and not rf.url:
                bad("unavailable", f"{path} is missing and no official download url is registered; "
                                   f"place the file there by hand")
                continue
            part = part_path(path)
            partial = f" ({part} holds {part.stat().st_size} bytes of an interrupted download, fetch resumes it)" \
                if part.is_file() else ""
            bad("missing", f"{path} is missing{partial}; fix: {entry.fix_hint()}")
            continue
        if rf is None:
            continue
        size = path.stat().st_size
        if rf.size is not None and size != rf.size:
            bad("mismatch", f"{path} has {size} bytes, the registry expects {rf.size}; fix: {entry.replace_hint()}")
        elif check_hash and rf.sha256 is not None and sha256_of(path) != rf.sha256.lower():
            bad("mismatch", f"{path}: sha256 differs from the registry's {rf.sha256}; fix: {entry.replace_hint()}")


def _cell(value) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def format_table(rows: list[Row]) -> str:
    """The rows as a fixed-width table, then one line per problem of the rows that are not ok."""
    header = ("task(s)", "dataset", "status", "transitions", "episodes", "obs/act")
    cells = [header] + [
        (", ".join(r.tasks) or "-", r.dataset, r.status, _cell(r.transitions), _cell(r.episodes),
         f"{_cell(r.obs_dim)}/{_cell(r.act_dim)}")
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    right = {3, 4}
    lines = ["  ".join(c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i])
                       for i in range(len(header))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    problems = [f"{r.dataset} ({r.status}): {p}" for r in rows if not r.ok for p in r.problems]
    if problems:
        lines += [""] + problems
    n_ok = sum(r.ok for r in rows)
    lines += ["", f"{n_ok}/{len(rows)} datasets ok"]
    return "\n".join(lines)
