"""experiments/verdicts.py: every claim row is judged by its intervals, on two small 'seeds'."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import train_small_lms

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import verdicts  # noqa: E402


def test_the_verdict_rules():
    assert verdicts.side((0.5, 0.1, 0.9), +1) == "yes"
    assert verdicts.side((0.5, -0.1, 0.9), +1) == "n.s."
    assert verdicts.side((-0.5, -0.9, -0.1), +1) == "no"
    assert verdicts.side((-0.5, -0.9, -0.1), -1) == "yes"
    assert verdicts.side((1.5, 1.1, 1.9), +1, threshold=1.0) == "yes"
    assert verdicts.side((0.5, None, None), +1) == "n.s."                  # no interval
    assert verdicts.combine(["yes", "yes"]) == "reproduced"
    assert verdicts.combine(["no", "no"]) == "not reproduced"
    assert verdicts.combine(["yes", "no"]) == "seeds disagree"
    assert verdicts.combine(["yes", "n.s."]) == "not separable at this size"
    assert verdicts.combine(["none", "none"]) == "not measured"
    assert verdicts.combine(["yes", "none"]) == "reproduced (seed 0 only)"     # not "n.s."
    assert verdicts.combine(["none", "no", "no"]) == "not reproduced (seed 1, 2 only)"
    assert verdicts.side(None, +1) == verdicts.side((None, None, None), +1) == "none"
    assert verdicts.ranges({1: "a", 2: "a", 3: "b", 4: "a"}) == "a at τ 1–2; b at τ 3; a at τ 4"
    assert (verdicts.ranges({1: "a (seed 0 only)", 2: "b (seed 0 only)"})
            == "a at τ 1; b at τ 2 (seed 0 only)")
    assert (verdicts.ranges({1: "a (seed 0 only)", 2: "b"})            # not shared: kept per delay
            == "a (seed 0 only) at τ 1; b at τ 2")
    assert verdicts.negate((1.0, 0.5, 2.0)) == (-1.0, -2.0, -0.5)


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """Two 'seeds' of a joint and a cbow LM of the generated corpus, each analysed (with its
    whitened analysis), as the docs' commands do on Brown."""
    folder = tmp_path_factory.mktemp("seeds")
    runs = []
    for seed in (0, 1):
        (folder / f"lms{seed}").mkdir()
        lms = train_small_lms(folder / f"lms{seed}", [
            ("joint", ["--seed", str(seed)]), ("cbow", ["--seed", str(seed), "--embeddings", "cbow"])])
        out = folder / f"seed{seed}"
        for extra, where in (([], out), (["--whiten", "--no-table2"], out / "whitened")):
            subprocess.run([sys.executable, "analyze.py", "--checkpoints", *lms, "--state", "both",
                            "--max-delay", "4", "--bootstrap", "50", "--no-progress",
                            "--sweep-cache", str(folder / "cache"), "--out-dir", str(where),
                            *extra], cwd=ROOT, check=True, capture_output=True)
        runs.append(str(out))
    return runs, folder


def test_verdicts_are_written_for_every_claim(two_seeds):
    runs, folder = two_seeds
    out = folder / "verdicts.md"
    subprocess.run([sys.executable, "experiments/verdicts.py", "--runs", *runs, "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    table = [line for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert len(table) > 25
    for line in table:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert len(cells) == 6, line
        if cells[4].startswith("not measured"):                  # K = 4 here: no tau > 10
            continue
        assert any(word in cells[4] for word in ("reproduced", "not separable", "disagree",
                                                  "interval")), line
        assert cells[3].count(" / ") >= 1, line                  # a number for each seed


def test_a_seed_without_its_whitened_analysis_is_left_out_by_name(two_seeds, tmp_path):
    """The whitened rows are judged on the seeds that have a whitened analysis, and say so."""
    runs, _ = two_seeds
    second = tmp_path / "seed1"
    shutil.copytree(runs[1], second, ignore=shutil.ignore_patterns("whitened"))
    out = tmp_path / "verdicts.md"
    subprocess.run([sys.executable, "experiments/verdicts.py", "--runs", runs[0], str(second),
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")][2:]
    whitened = [row for row in rows if "whitened" in row.split(" | ")[1]]
    assert whitened
    for row in whitened:
        verdict = row.split(" | ")[4]
        assert verdict.endswith("(seed 0 only)"), row           # K = 4 measures every one
    assert not any("only)" in row.split(" | ")[4] for row in rows if row not in whitened)


def test_a_folder_without_intervals_is_one_line(tmp_path):
    (tmp_path / "results.json").write_text('{"models": [], "differences": {}}')
    run = subprocess.run([sys.executable, "experiments/verdicts.py", "--runs", str(tmp_path),
                          "--out", str(tmp_path / "v.md")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1 and "no intervals" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
