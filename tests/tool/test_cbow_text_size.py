"""experiments/cbow_text_size.py: Table 2 on CBOW vectors of a part of the training text."""
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import cbow_text_size  # noqa: E402


def test_a_fraction_is_every_kth_chunk_across_the_whole_text():
    ids = np.arange(1000)
    quarter = cbow_text_size.fraction_of_text(ids, 0.25)
    assert quarter.size == 250 and quarter[0] == 0 and quarter[-1] >= 960     # start to end
    assert set(quarter[:10]) == set(range(10)) and 40 in quarter and 10 not in quarter
    np.testing.assert_array_equal(cbow_text_size.fraction_of_text(ids, 1.0), ids)
    assert cbow_text_size.fraction_of_text(ids, 0.5).size == 500


def test_it_writes_one_row_per_task_fraction_and_seed(tmp_path):
    out = tmp_path / "size"
    subprocess.run([sys.executable, "experiments/cbow_text_size.py", "--corpus", "generated",
                    "--fractions", "0.5", "1", "--seeds", "1", "--max-train-tokens", "20000",
                    "--cv-folds", "2", "--out-dir", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    rows = json.loads((out / "results.json").read_text())["rows"]
    tasks = {r["row"] for r in rows}
    assert len(rows) == 2 * len(tasks) and {r["fraction"] for r in rows} == {0.5, 1.0}
    half, whole = (next(r["words_read"] for r in rows if r["fraction"] == f) for f in (0.5, 1.0))
    assert abs(half - whole / 2) <= whole / 100
    for r in rows:
        assert r["paper_ci"][0] <= r["paper"] <= r["paper_ci"][1] and r["honest"] <= r["paper"]
    assert (out / "table2_size.md").read_text().count("\n") == 2 + len(rows)


def test_a_fraction_outside_zero_one_is_one_line():
    run = subprocess.run([sys.executable, "experiments/cbow_text_size.py", "--fractions", "1.5"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0 and run.stderr.strip().endswith("must be in (0, 1]")
    assert len(run.stderr.strip().splitlines()) == 1
