"""experiments/cells.py on three small LMs of the planted language: one row per LM with its cell,
the number kept between the language's bounds, the figure written, the wrong results refused."""
import importlib.util
import os

import pytest

import analyze
import train
from conftest import DEVICE
from tool.checkpoints import load_checkpoint

SMALL = ["--device", DEVICE, "--corpus", "synthetic", "--max-distance", "4", "--embedding-size", "8",
         "--hidden-size", "16", "--epochs", "2", "--batch-size", "8", "--num-steps", "20",
         "--no-progress"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_experiment():
    spec = importlib.util.spec_from_file_location("cells_experiment",
                                                  os.path.join(ROOT, "experiments", "cells.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    paths = [str(folder / f"{cell}.npz") for cell in ("lstm", "gru", "rnn")]
    for path, cell, lr in zip(paths, ("lstm", "gru", "rnn"), ("1", "1", "0.3")):
        assert train.main([*SMALL, "--cell", cell, "--lr", lr, "--out", path]) == 0
    out = folder / "analysis"
    assert analyze.main(["--device", DEVICE, "--checkpoints", *paths, "--out-dir", str(out),
                         "--sweep-cache", str(folder / "sweeps"), "--max-delay", "7", "--state", "h",
                         "--average", "class", "--max-tokens", "3000", "--no-table2",
                         "--no-progress"]) == 0
    return paths, out


def test_one_row_per_cell_and_the_figure(analysed, tmp_path, capsys):
    paths, out = analysed
    experiment = load_experiment()
    assert experiment.main(["--checkpoints", *paths, "--results", str(out / "results.json"),
                            "--out-dir", str(tmp_path)]) == 0
    lines = (tmp_path / "cells.md").read_text().splitlines()
    rows = [line.split(" | ") for line in lines[2:]]
    assert [row[1] for row in rows] == ["lstm", "gru", "rnn"]
    assert "bounds" in lines[0] and len(rows) == 3
    for row, path in zip(rows, paths):
        assert row[4] == f"{load_checkpoint(path)[2]['train']['best_valid_ppl']:.2f}"
        assert 0 <= int(row[-1].strip(" |")) <= 7                # a delay the analysis has
    assert (tmp_path / "cells.png").stat().st_size > 0 and (tmp_path / "cells.csv").exists()


def test_results_of_other_checkpoints_are_refused(analysed, tmp_path):
    paths, out = analysed
    with pytest.raises(SystemExit, match="does not analyse these checkpoints"):
        load_experiment().main(["--checkpoints", *reversed(paths), "--results",
                                str(out / "results.json"), "--out-dir", str(tmp_path)])
