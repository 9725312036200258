"""Checking the datasets on disk: `python -m expo.data verify [task|dataset]`.

A run that starts on a missing, truncated or different-release file fails hours later or, worse,
trains on the wrong data. verify answers "is every dataset I need here and the one the paper used?"
before any run: for each dataset it checks that its files exist, their size / sha256 when the registry
knows them, that the public loader (expo.data.load_entry, with the task's protocol spec, so the
observation / action widths are checked against expo/protocol.py) reads them, and that the counts
match the facts recorded in the registry (entry.expected; a generated entry's num_demos).

Statuses: ok | missing (a file is absent: fetch or generate it) | malformed (the loader rejects it) |
mismatch (size, sha256, counts or widths differ from the registry) | unavailable (nothing to fetch:
no download registered, an optional loader not installed, or a task naming an unregistered dataset).
Nothing is generated or downloaded here; each row that is not ok says which command fixes it.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from expo.data.errors import DatasetError
from expo.data.fetch import datasets_for, minari_id, part_path, sha256_of
from expo.data.registry import DATASETS, ExternalDataset, GeneratedDataset
from expo.protocol import TASKS

STATUSES = ("ok", "missing", "malformed", "mismatch", "unavailable")

# entry.expected key -> the measured count it is compared with
_COUNTS = {"transitions": "transitions", "episodes": "episodes", "demos": "episodes",
           "obs_dim": "obs_dim", "act_dim": "act_dim"}


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


def _replace_hint(entry) -> str:
    """The fix for a file that is present but wrong: plain `fetch` would skip a present file."""
    if isinstance(entry, GeneratedDataset):
        return entry.fix_hint()
    return f"`python -m expo.data fetch {entry.key} --force` (downloads it again)"


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
    from expo.data import load_entry

    try:
        data = load_entry(entry, specs[0] if specs else None)
    except ImportError as e:
        return bad("unavailable", f"the loader for format {entry.format!r} cannot be imported ({e}); install what it names")
    except Exception as e:  # noqa: BLE001 - any failure to load is this dataset's verdict, not verify's crash
        message = str(e) if isinstance(e, DatasetError) else f"{entry.path()}: {type(e).__name__}: {e}"
        if "fix:" not in message:
            message += f"; fix: {_replace_hint(entry)}"
        elif isinstance(entry, ExternalDataset):
            message += f" (the file is present: {_replace_hint(entry)} replaces it)"
        return bad("malformed", message)

    obs, act = data["observations"], data["actions"]
    row.transitions = int(len(obs))
    row.episodes = int(data["episode_starts"].sum())
    row.obs_dim = int(obs.shape[1]) if obs.ndim == 2 else None
    row.act_dim = int(act.shape[1]) if act.ndim == 2 else None

    expected = dict(entry.expected) if isinstance(entry, ExternalDataset) else {"demos": entry.num_demos}
    for fact, value in expected.items():
        if fact in _COUNTS and getattr(row, _COUNTS[fact]) != value:
            bad("mismatch", f"{key}: {fact} is {getattr(row, _COUNTS[fact])}, the registry expects {value} "
                            f"(a different release of the file?); fix: {_replace_hint(entry)}")
    for spec in specs:
        if (row.obs_dim, row.act_dim) != (spec.obs_dim, spec.act_dim):
            bad("mismatch", f"{key}: obs/act dims {row.obs_dim}/{row.act_dim}, task {spec.name!r} expects "
                            f"{spec.obs_dim}/{spec.act_dim}; fix: {_replace_hint(entry)}")
    return row


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
            bad("mismatch", f"{path} has {size} bytes, the registry expects {rf.size}; fix: {_replace_hint(entry)}")
        elif check_hash and rf.sha256 is not None and sha256_of(path) != rf.sha256.lower():
            bad("mismatch", f"{path}: sha256 differs from the registry's {rf.sha256}; fix: {_replace_hint(entry)}")


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
