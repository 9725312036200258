"""The README's result tables are what `make report` writes from the committed results/ files
(analysis/readme.py), and the README stays a five-minute read."""
import shutil
import subprocess
from pathlib import Path

import pytest

from analysis import readme

ROOT = Path(__file__).resolve().parents[1]


def committed_results(tmp_path: Path) -> Path:
    """A copy of results/ holding only the files git tracks: a run finishing while the tests run,
    or one not committed yet, must not change what the committed README is compared with."""
    try:
        listed = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return ROOT / "results"            # not a git checkout: the folder as it is
    out = tmp_path / "results"
    for rel in listed:
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    out.mkdir(exist_ok=True)
    return out


def test_readme_tables_equal_what_make_report_writes(tmp_path):
    results = committed_results(tmp_path)
    assert readme.differing_blocks(ROOT / "README.md", results) == [], (
        "README.md's generated tables differ from the committed results/: run `make report`")
    names = [m.group("name") for m in readme._BLOCK.finditer((ROOT / "README.md").read_text())]
    assert set(names) == set(readme.BLOCKS)


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    # About 12,000 characters, read in five minutes; the margin is for the claims table's rows that
    # fill in as the CPU-scale runs finish.
    assert len(text) <= 12_500, f"README.md has {len(text)} characters; move detail to docs/"
    first = text.split("```", 2)[1].strip().splitlines()
    assert first[0] == "bash" and [line.split()[:2] for line in first[1:]] == [
        ["make", "demo"], ["make", "test"]]
    for link in ("docs/RUNNING.md", "docs/TASKS.md", "docs/FIDELITY.md", "docs/MEASURED.md",
                 "analysis/SCHEMA.md"):
        assert link in text and (ROOT / link).exists()


def test_a_hand_edited_table_is_caught_and_rewritten(tmp_path):
    (tmp_path / "results" / "experts").mkdir(parents=True)
    (tmp_path / "results" / "experts" / "lift.csv").write_text(
        "task,noise,episodes,successes,success_rate\nlift,0.0,50,49,0.98\nlift,0.3,50,40,0.8\n")
    doc = tmp_path / "README.md"
    doc.write_text("intro\n<!-- generated: experts (make report) -->\n| typed | 1.00 |\n"
                   "<!-- end generated: experts -->\nrest\n")
    assert readme.differing_blocks(doc, tmp_path / "results") == ["experts"]
    assert readme.main(["--results", str(tmp_path / "results"), "--readme", str(doc), "--check"]) == 1
    assert readme.main(["--results", str(tmp_path / "results"), "--readme", str(doc)]) == 0
    text = doc.read_text()
    assert "| lift | 0.3 | 50 | 40 | 0.80 |" in text and "typed" not in text
    assert text.startswith("intro\n") and text.endswith("rest\n")
    assert readme.differing_blocks(doc, tmp_path / "results") == []


def test_unknown_block_names_the_valid_ones(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("<!-- generated: typo (make report) -->\n<!-- end generated: typo -->\n")
    with pytest.raises(ValueError, match="valid: claims, experts"):
        readme.differing_blocks(doc, tmp_path)
