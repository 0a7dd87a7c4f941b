"""The GRU and the RNN through both scripts: train.py --cell records the cell, --resume goes on bit
for bit, analyze.py reads the cell from the checkpoint (state h by default, c refused before any
work), a checkpoint without a cell is an LSTM, one that names an unknown cell is refused."""
import json

import numpy as np
import pytest

import analyze
import cells
import train
from conftest import DEVICE, SMALL_LM_ARGS, train_small_lms
from tool.checkpoints import CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def three_cells(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    return train_small_lms(folder, [(name, ["--epochs", "2", "--cell", name, "--embeddings", emb])
                                    for name, emb in (("lstm", "joint"), ("gru", "cbow"),
                                                      ("rnn", "joint"))])


def analyse(checkpoints, out_dir, *extra):
    return analyze.main(["--device", DEVICE, "--checkpoints", *checkpoints, "--out-dir", str(out_dir),
                         "--sweep-cache", str(out_dir.parent / "sweeps"), "--max-delay", "3",
                         "--max-tokens", "400", "--batch-size", "4", "--no-progress", *extra])


def test_the_checkpoint_records_its_cell_and_the_arrays_have_its_gates(three_cells):
    for path, name in zip(three_cells, ("lstm", "gru", "rnn")):
        params, _, meta, _ = load_checkpoint(path)
        assert meta["settings"]["cell"] == name
        H = params["W_h"].shape[1]
        assert params["W_h"].shape == (cells.CELLS[name].gates * H, H)
        assert meta["train"]["best_valid_ppl"] < len(load_checkpoint(path)[1])   # below uniform


def test_analysis_of_three_cells_in_state_h(three_cells, tmp_path):
    out = tmp_path / "out"
    assert analyse(three_cells, out) == 0                     # --state h, the default with a GRU
    models = json.loads((out / "results.json").read_text())["models"]
    assert [m["cell"] for m in models] == ["lstm", "gru", "rnn"]
    assert set(models[0]["spectrum"]) == {"c", "h"} and set(models[1]["spectrum"]) == {"h"}
    for model in models:
        sigma1 = model["spectrum"]["h"]["sigma1"]
        assert len(sigma1) == 4 and all(np.isfinite(sigma1)) and sigma1[0] > 0
        assert set(model["table1"]) == {"h"}
    assert (out / "table2.md").exists() and (out / "figure1.png").exists()
    assert analyse(three_cells[1:], tmp_path / "whitened", "--whiten", "--no-table2") == 0


@pytest.mark.parametrize("state", ["c", "both"])
def test_state_c_of_a_one_state_cell_stops_before_any_work(three_cells, tmp_path, capsys, state):
    out = tmp_path / "out"
    assert analyse(three_cells, out, "--state", state) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "gru.npz is a GRU, whose one state is h" in error[0]
    assert not out.exists()


def test_a_checkpoint_without_a_cell_is_an_lstm_and_an_unknown_cell_is_refused(three_cells, tmp_path):
    params, vocab, meta, extra = load_checkpoint(three_cells[0])
    del meta["settings"]["cell"]
    old = str(tmp_path / "old.npz")
    save_checkpoint(old, params, vocab, meta, extra)
    assert analyse([old], tmp_path / "out", "--no-table2") == 0
    models = json.loads((tmp_path / "out" / "results.json").read_text())["models"]
    assert models[0]["cell"] == "lstm" and set(models[0]["spectrum"]) == {"c", "h"}
    params, vocab, meta, extra = load_checkpoint(three_cells[1])
    meta["settings"]["cell"] = "transformer"
    odd = str(tmp_path / "odd.npz")
    save_checkpoint(odd, params, vocab, meta, extra)
    with pytest.raises(CheckpointError, match="names the cell 'transformer'"):
        load_checkpoint(odd)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_resume_of_a_one_state_cell_equals_an_uninterrupted_run(tmp_path, cell):
    whole, parts = str(tmp_path / "whole.npz"), str(tmp_path / "parts.npz")
    args = [*SMALL_LM_ARGS, "--cell", cell]
    assert train.main([*args, "--epochs", "2", "--out", whole]) == 0
    assert train.main([*args, "--epochs", "2", "--stop-after", "23", "--out", parts]) == 0
    assert train.main(["--resume", "--out", parts, "--no-progress"]) == 0      # from inside epoch 1
    a, b = load_checkpoint(whole)[0], load_checkpoint(parts)[0]
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert load_checkpoint(parts)[2]["settings"]["cell"] == cell
