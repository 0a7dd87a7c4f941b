"""What both scripts tell the user: --help that tells the truth, Markdown tables that render."""
import re

import pytest

import analyze
import train
from tool import outputs


@pytest.mark.parametrize("script", [train, analyze])
def test_help_tells_the_truth(script):
    """Every option has a help line, no default is shown as None or twice, the exit statuses end it."""
    parser = script.build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    text = " ".join(parser.format_help().split())
    assert "(default: None)" not in text and "(default: False)" not in text
    for entry in re.split(r"\s(?=--[a-z])", text):
        assert entry.count("default") <= 1 or "(default:" not in entry, entry
    assert "exit status: 0" in text and "130 Ctrl-C" in text and "2 usage" in text


def test_the_default_out_follows_the_embeddings_and_the_cell_and_spares_the_committed_lms():
    assert train.parse_args([]).out == "runs/joint.npz"
    assert train.parse_args(["--embeddings", "cbow"]).out == "runs/cbow.npz"
    assert train.parse_args(["--cell", "gru"]).out == "runs/gru-joint.npz"      # not the LSTM's
    assert train.parse_args(["--cell", "rnn", "--embeddings", "cbow"]).out == "runs/rnn-cbow.npz"
    assert train.parse_args(["--cell", "lstm"]).out == "runs/joint.npz"
    assert train.parse_args(["--out", "x.npz"]).out == "x.npz"


def markdown_rows(path):
    """The cells of each row of a Markdown table file (a "|" escaped as "\\|" is inside a cell)."""
    return [re.split(r"(?<!\\)\|", line.strip()[1:-1]) for line in path.read_text().splitlines()]


def test_markdown_tables_have_as_many_cells_in_every_row(tmp_path):
    outputs.write_table(str(tmp_path / "t"), ["class | band", "a", "b"],
                        [["nouns | rank 1-100", "1.0", "2.0"], ["verbs | rank 1-100", "-", "3"]])
    rows = markdown_rows(tmp_path / "t.md")
    assert len({len(row) for row in rows}) == 1 and len(rows) == 4


def test_the_early_stopping_message_says_what_happened():
    from tool import training
    rose = training.stop_message(15.50, 15.49, 0.0)
    assert "15.50 is no better than the best so far, 15.49" in rose and "improved" not in rose
    small = training.stop_message(15.40, 15.49, 0.01)
    assert "improved by 0.58%, less than --min-improvement 1.00%" in small


@pytest.mark.parametrize("script", [train, analyze])
def test_a_run_that_fails_before_writing_leaves_no_folder(script, tmp_path, monkeypatch, capsys):
    import nltk
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "no-corpus")])
    monkeypatch.setattr(nltk, "download", lambda *args, **kwargs: False)      # offline
    target = tmp_path / "new" / "deeper"
    option = ["--out", str(target / "lm.npz")] if script is train else ["--out-dir", str(target)]
    assert script.main([*option, "--device", "cpu"]) == 1
    assert "brown corpus is not installed" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and tmp_path.exists()
