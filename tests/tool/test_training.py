"""Training on the generated corpus: learning, CBOW, checkpoints, resume, interruption, bad input."""
import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tool.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
import corpus
import lstm_memory
import train
import word2vec
from tool import corpora, training

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def run(tmp_path, small_lm_args):
    """run(*options, name="lstm_memory.npz") -> (exit status, --out): train.main on the small LM."""
    def run(*extra, name="lstm_memory.npz"):
        out = str(tmp_path / name)
        return train.main([*small_lm_args, "--out", out, *extra]), out
    return run


def test_small_lm_beats_the_unigram_baseline(run):
    code, out = run("--epochs", "4", "--lr", "1.0")
    assert code == 0
    _, _, meta, _ = load_checkpoint(out)
    data = corpora.load_corpus("generated")
    counts = np.bincount(data.ids["train"], minlength=len(data.vocab)) + 1.0
    unigram_ppl = math.exp(-np.log(counts / counts.sum())[data.ids["valid"]].mean())
    assert meta["train"]["best_valid_ppl"] < 0.5 * unigram_ppl
    assert meta["train"]["finished"] and math.isfinite(meta["train"]["test_ppl"])


def test_cbow_model_keeps_its_embeddings_frozen(run, tmp_path):
    code, out = run("--epochs", "1", "--embeddings", "cbow")
    assert code == 0
    params, _, meta, _ = load_checkpoint(out)
    cbow = np.load(str(tmp_path / "lstm_memory.cbow.npy"))
    np.testing.assert_array_equal(params["embedding"], cbow.astype(np.float32))
    assert meta["train"]["cbow"]["loss_per_epoch"][-1] < meta["train"]["cbow"]["loss_per_epoch"][0]


def test_checkpoint_round_trip(tmp_path):
    params = lstm_memory.init_params(5, 2, 3, seed=1)
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, params, list("abcde"), {"x": [1, 2]}, {"h": np.ones((2, 3))})
    loaded, vocab, meta, extra = load_checkpoint(path)
    assert vocab == list("abcde") and meta == {"x": [1, 2]}
    np.testing.assert_array_equal(extra["h"], np.ones((2, 3)))
    for name in params:
        np.testing.assert_array_equal(loaded[name], params[name])
    with np.load(path, allow_pickle=False) as data:                   # plain numpy can read it
        assert data["W_x"].shape == (12, 2)


def assert_same_params(path_a, path_b):
    a, _, meta_a, _ = load_checkpoint(path_a)
    b, _, meta_b, _ = load_checkpoint(path_b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert [h["valid_ppl"] for h in meta_a["train"]["history"]] == \
           [h["valid_ppl"] for h in meta_b["train"]["history"]]


def test_resume_equals_an_uninterrupted_run(run):
    _, straight = run("--epochs", "2", "--min-improvement", "0", name="straight.npz")
    code, interrupted = run("--epochs", "2", "--min-improvement", "0", "--stop-after", "23",
                            name="resumed.npz")
    assert code == 0 and not os.path.exists(interrupted)          # stopped inside epoch 1
    code, _ = run("--resume", "--epochs", "2", name="resumed.npz")
    assert code == 0
    assert_same_params(straight, interrupted)
    assert_same_params(training.last_path(straight), training.last_path(interrupted))


def test_ctrl_c_saves_and_resume_finishes_the_same_run(run, capsys, monkeypatch):
    _, straight = run("--epochs", "1", name="straight.npz")
    calls = {"n": 0}
    original = lstm_memory.lm_loss_and_grads

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:
            os.kill(os.getpid(), signal.SIGINT)                        # as if the user pressed Ctrl-C
        return original(*args, **kwargs)

    monkeypatch.setattr(lstm_memory, "lm_loss_and_grads", interrupting)
    code, out = run("--epochs", "1", name="ctrlc.npz")
    monkeypatch.setattr(lstm_memory, "lm_loss_and_grads", original)
    assert code == 130 and os.path.exists(training.last_path(out))
    resume = f"python train.py --resume --out {out}"
    assert last_line(capsys.readouterr().err) == f"stopped; resume with: {resume}"
    _, _, meta, _ = load_checkpoint(training.last_path(out))
    assert meta["train"]["window"] == 9 and not meta["train"]["finished"]
    assert run("--resume", name="ctrlc.npz")[0] == 0
    assert_same_params(straight, out)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(run, capsys, monkeypatch):
    original, calls = lstm_memory.lm_loss_and_grads, {"n": 0}

    def diverging(*args, **kwargs):               # window 7 "diverges"
        calls["n"] += 1
        loss, grads, state = original(*args, **kwargs)
        return (float("nan") if calls["n"] == 7 else loss), grads, state

    monkeypatch.setattr(lstm_memory, "lm_loss_and_grads", diverging)
    code, out = run("--epochs", "1", "--save-every", "5")
    assert code == 1
    message = last_line(capsys.readouterr().err)
    assert "non-finite loss or gradient at epoch 1, window 6" in message
    assert f"the last good state is in {training.last_path(out)}" in message      # a file that exists
    params, _, meta, _ = load_checkpoint(training.last_path(out))
    assert meta["train"]["window"] == 5                 # the last good save is untouched
    assert all(np.all(np.isfinite(v)) for v in params.values())


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", None])
def test_unusable_checkpoints_are_refused_with_one_sentence(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:                                   # a real .npz, but not a checkpoint
        np.savez(path, weights=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(str(path))
    assert "\n" not in str(info.value)


def test_truncated_checkpoint_is_refused(run, tmp_path):
    code, out = run("--epochs", "1")
    data = open(out, "rb").read()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(str(truncated))


def test_resume_refuses_a_checkpoint_of_another_vocabulary(run, capsys):
    code, out = run("--epochs", "1", "--stop-after", "3")
    params, vocab, meta, extra = load_checkpoint(training.last_path(out))
    vocab[0], vocab[1] = vocab[1], vocab[0]
    save_checkpoint(training.last_path(out), params, vocab, meta, extra)
    assert run("--resume")[0] == 1
    assert "does not match the corpus" in capsys.readouterr().err


def test_missing_resume_file_is_one_clear_error(run, capsys):
    assert run("--resume", name="nothing.npz")[0] == 1
    assert "does not exist" in capsys.readouterr().err


def test_help_and_impossible_options():
    help_text = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, text=True,
                               capture_output=True, check=True).stdout
    assert "--max-train-tokens" in help_text and "(default: 0.8)" in help_text
    bad = subprocess.run([sys.executable, "train.py", "--dropout", "1.5"], cwd=ROOT, text=True,
                         capture_output=True)
    assert bad.returncode == 2 and "argument --dropout: must be in [0, 1)" in bad.stderr
    assert "--fixed-distance" in help_text and "--tag-column" in help_text
    with pytest.raises(SystemExit):
        train.parse_args(["--corpus", "brown", "--fixed-distance"])      # a synthetic-only option


def test_no_early_stop_before_the_learning_rate_decays(run, monkeypatch):
    """A validation blip in the constant-lr epochs must not end training (the cbow LM's epoch 6)."""
    scores = iter([50.0, 60.0, 40.0, 45.0, 44.0])
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: next(scores, 1.0))
    code, out = run("--epochs", "5", "--decay-after", "2", "--min-improvement", "0")
    _, _, meta, _ = load_checkpoint(out)
    history = [h["valid_ppl"] for h in meta["train"]["history"]]
    assert history == [50.0, 60.0, 40.0, 45.0]           # epoch 2 worse: goes on; epoch 4: stops
    assert meta["train"]["best_valid_ppl"] == 40.0


def test_the_default_schedule_runs_every_epoch_and_keeps_the_best(run, monkeypatch):
    """The authors' configuration has no early stop: all epochs run, the best one is the checkpoint."""
    scores = iter([50.0, 60.0, 40.0, 45.0, 44.0])
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: next(scores, 1.0))
    code, out = run("--epochs", "5", "--decay-after", "2")
    _, _, meta, _ = load_checkpoint(out)
    assert [h["valid_ppl"] for h in meta["train"]["history"]] == [50.0, 60.0, 40.0, 45.0, 44.0]
    assert meta["train"]["best_valid_ppl"] == 40.0 and meta["train"]["finished"]


def test_learning_rate_schedule():
    args = train.parse_args([])
    rates = [train.learning_rate(args, epoch) for epoch in range(9)]
    assert rates[:6] == [1.0] * 6
    np.testing.assert_allclose(rates[6:], [0.8, 0.64, 0.512])


def test_sgd_step_follows_the_papers_cost_summed_over_steps():
    """Gradient of sum_t (mean over B) = T x gradient of the per-token mean; then clipped."""
    params = {"a": np.zeros(2), "embedding": np.zeros(2)}
    small = {"a": np.array([0.01, 0.0]), "embedding": np.array([1.0, 1.0])}
    norm = train.sgd_step(params, small, ["a"], lr=1.0, num_steps=50, max_norm=5.0)
    assert np.isclose(norm, 0.5)                          # 50 x 0.01, below the clip
    np.testing.assert_allclose(params["a"], [-0.5, 0.0])
    np.testing.assert_array_equal(params["embedding"], [0.0, 0.0])   # not trainable: frozen
    norm = train.sgd_step(params, {"a": np.array([0.0, 1.0])}, ["a"], lr=0.5, num_steps=50,
                          max_norm=5.0)
    assert np.isclose(norm, 50.0)
    np.testing.assert_allclose(params["a"], [-0.5, -2.5])           # lr x clipped norm 5


def test_gradient_clipping_scales_to_the_max_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]])}
    assert train.clip_factor(grads, 1.0) == (5.0, 0.2)
    assert train.clip_factor(grads, 6.0) == (5.0, 1.0)
    assert train.clip_factor({"a": np.zeros(3)}, 1.0) == (0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Robustness: checks before any long work, resume against the command line, exit statuses,
# late failures, foreign checkpoints
# ----------------------------------------------------------------------------------------------

def last_line(err: str) -> str:
    """The message of a failed run: its last stderr line, which must be its only error line."""
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("option, value, allowed", [
    ("--save-every", "0", "an integer >= 1"), ("--stop-after", "0", "an integer >= 1"),
    ("--epochs", "0", "an integer >= 1"), ("--epochs", "two", "an integer >= 1"),
    ("--lr", "0", "a number > 0"), ("--lr", "nan", "a number > 0"),
    ("--max-grad-norm", "-5", "a number > 0"), ("--lr-decay", "0", "in (0, 1]"),
    ("--lr-decay", "1.5", "in (0, 1]"), ("--decay-after", "-1", "an integer >= 0"),
    ("--min-improvement", "1", "in [0, 1)"), ("--dropout", "-0.1", "in [0, 1)"),
    ("--cbow-window", "0", "an integer >= 1"), ("--cbow-negative", "0", "an integer >= 1"),
    ("--cbow-sample", "-1", "a number >= 0"), ("--cbow-min-count", "0", "an integer >= 1"),
    ("--cbow-epochs", "0", "an integer >= 1"), ("--cbow-lr", "-0.05", "a number > 0"),
    ("--hidden-size", "0", "an integer >= 1"), ("--seed", "-1", "an integer >= 0"),
])
def test_options_out_of_range_are_usage_errors_that_give_the_range(option, value, allowed, capsys):
    with pytest.raises(SystemExit) as info:
        train.parse_args([option, value])
    assert info.value.code == 2
    assert f"argument {option}: must be {allowed}" in capsys.readouterr().err


def test_the_options_typed_are_told_from_defaults():
    args = train.parse_args(["--lr", "1.0", "--fixed-distance", "--corpus", "synthetic"])
    assert {"lr", "fixed_distance", "corpus"} <= args.given
    assert not {"hidden_size", "epochs", "dropout"} & args.given
    assert args.lr == 1.0 and args.hidden_size == 256 and args.epochs is None


def test_an_out_that_is_a_folder_or_not_writable_is_refused_first(run, tmp_path, capsys,
                                                                  monkeypatch):
    def no_corpus(*args, **kwargs):
        raise AssertionError("the corpus was read before --out was checked")

    monkeypatch.setattr(corpus, "load_corpus", no_corpus)
    code, _ = run(name="")                                             # --out tmp_path/: a folder
    assert code == 1 and "is a folder" in last_line(capsys.readouterr().err)
    (tmp_path / "plain-file").write_text("not a folder")
    code, out = run(name="plain-file/lstm_memory.npz")
    message = last_line(capsys.readouterr().err)
    assert code == 1 and message.startswith(f"error: --out {out} cannot be written")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_an_out_in_a_read_only_folder_is_refused(run, tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, _ = run(name="read-only/lstm_memory.npz")
    finally:
        folder.chmod(0o755)
    assert code == 1 and "cannot be written" in last_line(capsys.readouterr().err)


def test_the_out_folder_is_created(run, tmp_path):
    code, out = run("--stop-after", "2", name="new/folder/lstm_memory.npz")
    assert code == 0 and os.path.isfile(training.last_path(out))


@pytest.mark.parametrize("options, split, tokens", [
    (["--batch-size", "40", "--num-steps", "50"], "valid", 1694),      # 40 x 51 = 2040 tokens
    (["--max-train-tokens", "100", "--num-steps", "50"], "train", 100),    # 4 x 51 = 204 tokens
])
def test_a_corpus_too_short_for_the_streams_is_refused_before_training(run, options, split,
                                                                       tokens, capsys,
                                                                       monkeypatch):
    def no_cbow(*args, **kwargs):
        raise AssertionError("CBOW ran before the corpus was checked")

    monkeypatch.setattr(word2vec, "train_cbow", no_cbow)
    code, _ = run("--embeddings", "cbow", *options)
    message = last_line(capsys.readouterr().err)
    assert code == 1 and f"the {split} split of generated has {tokens} tokens, too few" in message


@pytest.fixture
def stopped(run):
    """A run of the small LM stopped after 3 windows: its --out (the state is in <out>.last.npz)."""
    code, out = run("--epochs", "2", "--stop-after", "3")
    assert code == 0
    return out


@pytest.mark.parametrize("option, ours, theirs", [
    ("--hidden-size", "32", "16"), ("--embedding-size", "4", "8"), ("--vocab-size", "50", "10000"),
    ("--embeddings", "cbow", "joint"), ("--lr", "0.5", "1.0"), ("--dropout", "0.25", "0.5"),
    ("--seed", "1", "0"), ("--dtype", "float64", "float32"),
])
def test_resume_refuses_options_that_contradict_the_checkpoint(run, stopped, option, ours, theirs,
                                                               capsys):
    code, _ = run("--resume", option, ours)
    message = last_line(capsys.readouterr().err)
    assert code == 1
    assert f"{option} {ours} contradicts {training.last_path(stopped)}" in message
    assert f"trained with {option} {theirs}" in message


def test_resume_refuses_another_corpus_given_on_the_command_line(run, stopped, capsys):
    code, _ = run("--resume", "--corpus", "synthetic")
    assert code == 1 and "--corpus synthetic contradicts" in last_line(capsys.readouterr().err)


def test_resume_accepts_options_with_the_checkpoints_values_and_more_epochs(run, stopped, capsys):
    code, _ = run("--resume", "--hidden-size", "16", "--lr", "1", "--epochs", "3",
                  "--stop-after", "2")
    assert code == 0
    _, _, meta, _ = load_checkpoint(training.last_path(stopped))
    assert meta["settings"]["epochs"] == 3 and meta["train"]["window"] == 5


def test_a_real_ctrl_c_saves_exits_130_and_the_run_resumes(run, small_lm_args, tmp_path):
    out = str(tmp_path / "lstm_memory.npz")
    child = subprocess.Popen([sys.executable, "train.py", *small_lm_args, "--out", out,
                              "--epochs", "30", "--save-every", "20"], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not os.path.exists(training.last_path(out)) and child.poll() is None:
        assert time.monotonic() < deadline, "no state saved within a minute"
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)                   # the user presses Ctrl-C
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "Traceback" not in err
    assert f"stopped; resume with: python train.py --resume --out {out}" in err
    _, _, meta, _ = load_checkpoint(training.last_path(out), required=("train",))
    assert not meta["train"]["finished"]
    window, epoch = meta["train"]["window"], meta["train"]["epoch"]
    assert run("--resume", "--stop-after", "1")[0] == 0
    _, _, meta, _ = load_checkpoint(training.last_path(out))
    assert (meta["train"]["epoch"], meta["train"]["window"]) == (epoch, window + 1)


def test_ctrl_c_outside_the_training_loop_exits_130(run, capsys, monkeypatch):
    def pressed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(word2vec, "train_cbow", pressed)
    assert run("--embeddings", "cbow")[0] == 130
    assert "interrupted" in last_line(capsys.readouterr().err)


def failing_savez(fail_at: int, calls: dict):
    """np.savez that writes a little, then fails like a full disk at call ``fail_at``."""
    original = np.savez

    def savez(handle, **arrays):
        calls["n"] += 1
        if calls["n"] == fail_at:
            handle.write(b"PK half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(handle, **arrays)
    return savez


def test_a_full_disk_ends_in_one_sentence_and_keeps_the_last_good_state(run, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(np, "savez", failing_savez(3, {"n": 0}))     # the save of window 15
    code, out = run("--epochs", "1", "--save-every", "5")
    message = last_line(capsys.readouterr().err)
    assert code == 1 and message.startswith(f"error: could not write {training.last_path(out)} "
                                            "(No space left on device)")
    assert f"{training.last_path(out)} holds the last good state" in message
    _, _, meta, _ = load_checkpoint(training.last_path(out), required=("train",))
    assert meta["train"]["window"] == 10
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_a_first_save_that_fails_says_nothing_was_saved(run, capsys, monkeypatch):
    monkeypatch.setattr(np, "savez", failing_savez(1, {"n": 0}))
    code, out = run("--epochs", "1", "--save-every", "5")
    message = last_line(capsys.readouterr().err)
    assert code == 1 and "no resumable state is left" in message
    assert not os.path.exists(training.last_path(out))


def test_an_out_folder_removed_mid_run_ends_in_one_sentence(run, tmp_path, capsys, monkeypatch):
    original, calls = lstm_memory.lm_loss_and_grads, {"n": 0}

    def removing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            shutil.rmtree(tmp_path / "runs")
        return original(*args, **kwargs)

    monkeypatch.setattr(lstm_memory, "lm_loss_and_grads", removing)
    code, out = run("--epochs", "1", "--save-every", "5", name="runs/lstm_memory.npz")
    message = last_line(capsys.readouterr().err)
    assert code == 1 and message.startswith(f"error: could not write {training.last_path(out)}")
    assert "no resumable state is left" in message


def test_a_non_finite_loss_before_any_save_names_no_missing_file(run, capsys, monkeypatch):
    original = lstm_memory.lm_loss_and_grads

    def diverging(*args, **kwargs):
        loss, grads, state = original(*args, **kwargs)
        return float("inf"), grads, state

    monkeypatch.setattr(lstm_memory, "lm_loss_and_grads", diverging)
    code, out = run("--epochs", "1")
    message = last_line(capsys.readouterr().err)
    assert code == 1 and "window 0: training stopped; no resumable state was saved yet" in message
    assert ".last.npz" not in message and not os.path.exists(training.last_path(out))


def test_stale_temporary_files_of_this_out_are_removed_at_the_start(run, tmp_path):
    stale = [tmp_path / ".tmp-lstm_memory.npz-a1b2.npz", tmp_path / ".tmp-lstm_memory.last.npz-c3d4.npz"]
    others = [tmp_path / ".tmp-other.npz-e5f6.npz", tmp_path / ".tmp-lstm_memory.npz-g7h8.txt",
              tmp_path / "notes.npz"]
    for path in stale + others:
        path.write_bytes(b"half a save")
    assert run("--stop-after", "1")[0] == 0
    assert not any(path.exists() for path in stale) and all(path.exists() for path in others)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoints_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = tmp_path / "c.npz"
        save_checkpoint(str(path), lstm_memory.init_params(5, 2, 3), list("abcde"), {})
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode


def write_checkpoint(path, params=None, vocab=None, meta=None, **extra):
    """A checkpoint of a tiny LM, any part of it replaced, written with plain np.savez."""
    arrays = {**lstm_memory.init_params(5, 2, 3, seed=1), **(params or {})}
    meta = {"format": training.FORMAT, "settings": {}, "train": {}} if meta is None else meta
    np.savez(path, **arrays, vocab=np.asarray(list("abcde") if vocab is None else vocab),
             meta=np.asarray(meta if isinstance(meta, np.ndarray) else json.dumps(meta)), **extra)
    return str(path)


@pytest.mark.parametrize("part, sentence", [
    ({"meta": [1, 2]}, "metadata that is not a JSON object"),
    ({"meta": np.zeros(3)}, "metadata that is not a JSON object"),
    ({"meta": {"format": training.FORMAT, "train": {}}}, "lacks the metadata field(s) settings"),
    ({"meta": {"settings": {}, "train": {}}}, "lacks the metadata field(s) format"),
    ({"meta": {"format": training.FORMAT, "settings": [], "train": {}}},
     "metadata field settings that is not a JSON object"),
    ({"meta": {"format": 1, "settings": {}, "train": {}}},
     "metadata field format that is not a string"),
    ({"params": {"W_h": np.zeros(12)}}, "W_h is a 1-D float64 array, expected a 2-D float array"),
    ({"params": {"b": np.zeros((12, 1))}}, "b is a 2-D float64 array, expected a 1-D float array"),
    ({"params": {"W_x": np.zeros((12, 2), dtype=np.int64)}}, "W_x is a 2-D int64 array"),
    ({"vocab": np.arange(5)}, "its vocab is a 1-D int64 array, not a list of words"),
    ({"params": {"W_out": np.full((5, 3), np.nan)}}, "non-finite values in W_out"),
    ({"extra": {"h": np.array([[np.inf, 0.0, 0.0]])}}, "non-finite values in h"),
    ({"params": {"W_h": np.zeros((8, 3))}}, "W_h has shape (8, 3), expected (12, 3)"),
])
def test_foreign_checkpoints_are_refused_field_by_field(tmp_path, part, sentence):
    path = write_checkpoint(tmp_path / "foreign.npz", part.get("params"), part.get("vocab"),
                            part.get("meta"), **part.get("extra", {}))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, required=("format", "settings", "train"))
    assert sentence in str(info.value) and "\n" not in str(info.value)


def test_a_single_npy_array_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "one.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(str(path))


def edit_last_state(out, edit):
    """Load <out>.last.npz, let ``edit(params, meta, extra)`` change it, write it back."""
    params, vocab, meta, extra = load_checkpoint(training.last_path(out))
    edit(params, meta, extra)
    save_checkpoint(training.last_path(out), params, vocab, meta, extra)


@pytest.mark.parametrize("edit, sentence", [
    (lambda p, m, e: m.update(format="another/2"), "has format 'another/2'"),
    (lambda p, m, e: m.pop("train"), "lacks the metadata field(s) train"),
    (lambda p, m, e: m["train"].pop("window"), "lacks the training state window"),
    (lambda p, m, e: m["train"].update(history="none"), "training state history of the wrong type"),
    (lambda p, m, e: m["train"].update(epoch=True), "training state epoch of the wrong type"),
    (lambda p, m, e: m["settings"].pop("num_steps"), "lacks the setting --num-steps"),
    (lambda p, m, e: m["settings"].update(hidden_size="16"), "holds --hidden-size '16'"),
    (lambda p, m, e: m["train"].update(rng={"state": 1}), "has an unusable training state"),
    (lambda p, m, e: e.pop("c"), "c is missing, expected (4, 16)"),
    (lambda p, m, e: e.update(h=e["h"][:2]), "h is (2, 16), expected (4, 16)"),
    (lambda p, m, e: m["settings"].update(dropout=1.5), "setting --dropout 1.5, which the command"),
    (lambda p, m, e: m["settings"].update(dtype="float16"), "setting --dtype 'float16', which the"),
    (lambda p, m, e: m["settings"].update(embeddings="word2vec"), "setting --embeddings 'word2vec'"),
    (lambda p, m, e: m["settings"].update(num_steps=-1), "setting --num-steps -1, which the comm"),
    (lambda p, m, e: m["settings"].update(lr=float("inf")), "setting --lr inf, which the command"),
])
def test_resume_refuses_a_broken_state_with_one_sentence(run, stopped, edit, sentence, capsys):
    edit_last_state(stopped, edit)
    code, _ = run("--resume")
    message = last_line(capsys.readouterr().err)
    assert code == 1 and message.startswith("error: ") and sentence in message


@pytest.mark.parametrize("options, status, sentence", [
    (["--lr", "0"], 2, "argument --lr: must be a number > 0"),
    (["--out", "."], 1, "error: --out . is a folder"),
    (["--resume", "--out", "{tmp}/none.npz"], 1, "none.last.npz does not exist"),
    (["--batch-size", "40", "--num-steps", "50", "--out", "{tmp}/lstm_memory.npz"], 1,
     "the valid split of generated has 1694 tokens"),
])
def test_the_command_line_fails_with_a_status_and_one_line(small_lm_args, tmp_path, options,
                                                           status, sentence):
    options = [option.replace("{tmp}", str(tmp_path)) for option in options]
    done = subprocess.run([sys.executable, "train.py", *small_lm_args, *options], cwd=ROOT,
                          text=True, capture_output=True, timeout=120)
    assert done.returncode == status and sentence in last_line(done.stderr)


def test_cbow_sub_sampling_off_and_an_impossible_min_count(run, capsys):
    """word2vec's -sample 0 turns sub-sampling off; a --cbow-min-count no word reaches is one
    sentence before any CBOW work."""
    assert run("--epochs", "1", "--embeddings", "cbow", "--cbow-sample", "0")[0] == 0
    capsys.readouterr()
    code, _ = run("--epochs", "1", "--embeddings", "cbow", "--cbow-min-count", "100000",
                  name="none.npz")
    err = capsys.readouterr().err
    assert code == 1 and "--cbow-min-count 100000" in err and "Traceback" not in err


def test_a_finished_run_trains_longer_with_a_larger_epochs(run, capsys):
    code, out = run("--epochs", "1")
    assert code == 0
    assert run("--resume")[0] == 0
    assert "already finished training (1 epochs)" in capsys.readouterr().err
    assert run("--resume", "--epochs", "2")[0] == 0
    meta = load_checkpoint(out)[2]
    assert [h["epoch"] for h in meta["train"]["history"]] == [1, 2] and meta["train"]["finished"]


# the mean loss of the first five windows of the small LM (seed 3, one BLAS thread): a change that
# only moves code between the method and the tool must leave these numbers as they are
FIRST_WINDOWS_LOSS = {("float64", "joint"): 3.756037389081394, ("float64", "cbow"): 3.764981933271989,
                      ("float32", "joint"): 3.7560374450683596, ("float32", "cbow"): 3.764981918334961}


@pytest.mark.parametrize("dtype, embeddings", FIRST_WINDOWS_LOSS)
def test_the_first_windows_loss_is_pinned(run, dtype, embeddings):
    code, out = run("--dtype", dtype, "--embeddings", embeddings, "--seed", "3", "--stop-after", "5",
                    "--cbow-min-count", "1")
    assert code == 0
    state = load_checkpoint(training.last_path(out))[2]["train"]
    tolerance = 1e-10 if dtype == "float64" else 1e-6
    assert math.isclose(state["loss_sum"] / state["tokens"], FIRST_WINDOWS_LOSS[dtype, embeddings],
                        rel_tol=tolerance)
