"""The README's result tables, generated from the committed files under results/ (`make report`).

    python -m analysis.readme [--results results] [--readme README.md] [--check]

Every table of results in README.md sits between two marker lines

    <!-- generated: NAME (make report) -->
    ...
    <!-- end generated: NAME -->

and is rewritten from results/ by this command; `--check` rewrites nothing and exits 1 naming the
blocks that differ (tests/test_readme_results.py runs it on the committed files, so a hand edit or a
result committed without its table fails). Blocks (`BLOCKS`):

* ``claims``: the claims table of `analysis.claims` in its compact form (the CPU-scale grids'
  runs; figures/REPORT.md has the full one);
* ``experts``: the scripted experts' success rates, results/experts/<task>.csv
  (`python -m expo.data experts <task>`);
* ``canary``: every method's final return on the canary task, results/canary (`analysis.canary`).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd

from analysis import canary, claims, stats
from expo.logger import atomic_write_text
from analysis.runs import load_runs

_BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) \(make report\) -->\n)(?P<body>.*?)"
                    r"(<!-- end generated: (?P=name) -->)", re.S)


def claims_block(results: Path) -> list[str]:
    loaded = load_runs(results)
    folders = sorted({c.folder for c in claims.CLAIMS})
    data = loaded.data[loaded.data["figure"].isin(folders)] if not loaded.empty else loaded.data
    table = claims.evaluate_claims(data, reps=stats.DEFAULT_BOOTSTRAP_REPS,
                                   seed=stats.DEFAULT_BOOTSTRAP_SEED)
    return claims.compact_markdown(table) + [""] + claims.here_lines(table) + ["", claims.LEGEND]


EXPERT_COLUMNS = ["task", "noise", "episodes", "successes", "success_rate"]


def experts_block(results: Path) -> list[str]:
    files = sorted((results / "experts").glob("*.csv"))
    if not files:
        return ["No scripted-expert measurement under results/experts/ yet "
                "(`python -m expo.data experts <task>` writes one)."]
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    missing = [c for c in EXPERT_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"results/experts/*.csv lack column(s) {', '.join(missing)}; "
                         f"rewrite them with `python -m expo.data experts <task>`")
    lines = ["| task | action noise | episodes | successes | success rate |",
             "|---|---|---|---|---|"]
    for r in frame.sort_values(["task", "noise"]).itertuples(index=False):
        lines.append(f"| {r.task} | {r.noise:g} | {r.episodes} | {r.successes} | "
                     f"{r.success_rate:.2f} |")
    return lines


def canary_block(results: Path) -> list[str]:
    loaded = load_runs(results)
    if loaded.empty:
        return canary.markdown(pd.DataFrame())
    return canary.markdown(canary.table(loaded.data), canary.near_zero(loaded.data))


BLOCKS: dict[str, Callable[[Path], list[str]]] = {
    "claims": claims_block,
    "experts": experts_block,
    "canary": canary_block,
}


def render(text: str, results: Path) -> tuple[str, list[str]]:
    """README text with every generated block rewritten from `results`, and the block names."""
    names: list[str] = []

    def replace(m: re.Match) -> str:
        name = m.group("name")
        if name not in BLOCKS:
            raise ValueError(f"README block {name!r} has no generator; valid: {', '.join(BLOCKS)}")
        names.append(name)
        return m.group(1) + "\n".join(BLOCKS[name](results)) + "\n" + m.group(4)

    return _BLOCK.sub(replace, text), names


def differing_blocks(readme: Path, results: Path) -> list[str]:
    """Names of the README's generated blocks whose text differs from what results/ gives."""
    text = readme.read_text()
    new, names = render(text, results)
    old_blocks = {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}
    new_blocks = {m.group("name"): m.group("body") for m in _BLOCK.finditer(new)}
    return [n for n in names if old_blocks.get(n) != new_blocks.get(n)]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.readme", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", type=Path)
    parser.add_argument("--readme", default="README.md", type=Path)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a generated block differs; write nothing")
    args = parser.parse_args(argv)
    if not args.readme.exists():
        print(f"error: {args.readme} not found; give --readme <path>", file=sys.stderr)
        return 2
    if args.check:
        differ = differing_blocks(args.readme, args.results)
        if differ:
            print(f"{args.readme}: generated block(s) {', '.join(differ)} differ from "
                  f"{args.results}/; run `make report`", file=sys.stderr)
            return 1
        return 0
    text, names = render(args.readme.read_text(), args.results)
    atomic_write_text(args.readme, text)
    print(f"rewrote {len(names)} generated block(s) of {args.readme} from {args.results}/: "
          f"{', '.join(names) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
