"""Never silently wrong, never finished work lost: the sweep cache as a promise about content,
finished runs kept, interruptions prompt, metadata checked like options."""
import errno
import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

import analyze
import lstm_memory
import train
from conftest import DEVICE, SMALL_LM_ARGS, train_small_lms
import corpus
from tool import files, languages, own_text


@pytest.fixture(scope="module")
def two_lms(tmp_path_factory):
    """Two small LMs of the generated corpus that differ only in their seed."""
    return train_small_lms(tmp_path_factory.mktemp("two"),
                           [(f"lm{seed}", ["--epochs", "2", "--seed", seed]) for seed in ("0", "1")])


def analyse(checkpoint, out_dir, *extra):
    return analyze.main(["--device", DEVICE, "--checkpoints", checkpoint, "--out-dir", str(out_dir),
                         "--sweep-cache", str(out_dir.parent / "sweeps"), "--max-delay", "4",
                         "--max-tokens", "400", "--batch-size", "4", "--no-progress",
                         "--no-table2", *extra])


def sigma1(out_dir):
    return json.loads((out_dir / "results.json").read_text())["models"][0]["spectrum"]["c"]["sigma1"]


def test_a_checkpoint_replaced_during_the_sweep_is_swept_again(two_lms, tmp_path, capsys, monkeypatch):
    """train.py's way of saving (write beside, rename) while analyze.py sweeps: the rerun must
    sweep the new LM, not reuse the sums of the old one."""
    path = str(tmp_path / "lm.npz")
    shutil.copy(two_lms[0], path)
    original = lstm_memory.sweep_state_gradients
    lock, replaced = threading.Lock(), []

    def replacing(*args, **kwargs):              # called once per worker thread: replace once
        with lock:
            if not replaced:
                shutil.copy(two_lms[1], path + ".tmp")
                os.replace(path + ".tmp", path)               # the new model lands mid-sweep
                replaced.append(True)
        return original(*args, **kwargs)

    monkeypatch.setattr(lstm_memory, "sweep_state_gradients", replacing)
    assert analyse(path, tmp_path / "during") == 0
    monkeypatch.setattr(lstm_memory, "sweep_state_gradients", original)
    capsys.readouterr()
    assert analyse(path, tmp_path / "after") == 0
    assert "reusing" not in capsys.readouterr().err
    assert analyse(two_lms[1], tmp_path / "fresh", "--sweep-cache", str(tmp_path / "other")) == 0
    assert sigma1(tmp_path / "after") == sigma1(tmp_path / "fresh") != sigma1(tmp_path / "during")


def edit_cache(folder, edit):
    """Rewrite every K=4 cache file of ``folder`` with edit(dict of its arrays)."""
    for path in folder.glob("*-K4-*.npz"):
        with np.load(path) as saved:
            arrays = dict(saved)
        edit(arrays)
        np.savez(path, **arrays)


@pytest.mark.parametrize("edit, reason", [
    (lambda a: a.update(sums=a["sums"] * 2), "not the ones that were written"),
    (lambda a: a.update(key=np.asarray("0" * 64)), "another LM, text or code"),
    (lambda a: a.update(sums=a["sums"][:2]), "not the ones that were written"),
    (lambda a: a.pop("key"), "cannot be read (KeyError)"),
])
def test_a_cache_file_that_fails_its_check_is_swept_again(two_lms, tmp_path, capsys, edit, reason):
    assert analyse(two_lms[0], tmp_path / "first") == 0
    edit_cache(tmp_path / "sweeps", edit)
    capsys.readouterr()
    assert analyse(two_lms[0], tmp_path / "second") == 0
    err = capsys.readouterr().err
    assert reason in err and "sweeping again" in err
    assert sigma1(tmp_path / "second") == sigma1(tmp_path / "first")


def test_a_cache_that_cannot_be_written_costs_the_cache_only(two_lms, tmp_path, capsys, monkeypatch):
    original = files.atomic_write

    def full_disk(path, *args, **kwargs):
        if "sweeps" in path:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, *args, **kwargs)

    monkeypatch.setattr(files, "atomic_write", full_disk)
    assert analyse(two_lms[0], tmp_path / "out") == 0
    assert "could not be kept" in capsys.readouterr().err
    assert (tmp_path / "out" / "results.json").exists()


def test_a_folder_in_place_of_the_cache_file_is_swept_and_noted(two_lms, tmp_path, capsys):
    assert analyse(two_lms[0], tmp_path / "first") == 0
    for path in (tmp_path / "sweeps").glob("*-K4-*.npz"):
        path.unlink()
        path.mkdir()
    capsys.readouterr()
    assert analyse(two_lms[0], tmp_path / "second") == 0
    err = capsys.readouterr().err
    assert "sweeping again" in err and "could not be kept" in err
    assert sigma1(tmp_path / "second") == sigma1(tmp_path / "first")


@pytest.fixture
def out(tmp_path):
    return str(tmp_path / "run" / "lm.npz")


def train_small(out, *extra):
    return train.main([*SMALL_LM_ARGS, "--out", out, *extra])


def test_a_finished_run_is_not_overwritten_without_restart(out, capsys):
    assert train_small(out, "--epochs", "2") == 0
    before = open(out, "rb").read()
    capsys.readouterr()
    assert train_small(out, "--epochs", "1") == 1
    err = capsys.readouterr().err
    assert "holds a finished run of 2 epochs" in err and "--restart" in err
    assert open(out, "rb").read() == before                       # nothing touched
    assert train_small(out, "--epochs", "1", "--restart") == 0    # asked for: replaced
    assert open(out, "rb").read() != before


def test_a_stopped_run_is_not_overwritten_and_restart_excludes_resume(out, capsys):
    assert train_small(out, "--stop-after", "3") == 0
    capsys.readouterr()
    assert train_small(out, "--epochs", "1") == 1
    assert "holds a run stopped at epoch 1, window 3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        train.parse_args(["--resume", "--restart"])
    assert usage.value.code == 2


def test_two_runs_cannot_write_one_out_and_a_stale_lock_is_taken_over(out, capsys):
    os.makedirs(os.path.dirname(out))
    lock = os.path.splitext(out)[0] + ".lock"
    with open(lock, "w") as handle:
        handle.write(str(os.getppid()))                       # a live process holds --out
    assert train_small(out, "--epochs", "1") == 1
    assert f"is being written by another train.py (pid {os.getppid()}" in capsys.readouterr().err
    assert not os.path.exists(out)
    with open(lock, "w") as handle:
        handle.write("999999999")                             # no such process: stale
    assert train_small(out, "--epochs", "1") == 0
    assert os.path.exists(out) and not os.path.exists(lock)   # released at the end


def test_ctrl_c_stops_the_sweep_workers_at_once(two_lms, tmp_path, monkeypatch):
    """Ctrl-C while two workers sweep: exit status 130 within a second or so, not when the
    workers would have finished (30 s here)."""
    def slow_sweep(params, streams, labelings, names, K, window=50, progress=None, sums=None,
                   cell=None):
        for _ in range(3000):
            time.sleep(0.01)
            progress(1)

    monkeypatch.setattr(lstm_memory, "sweep_state_gradients", slow_sweep)
    previous = signal.getsignal(signal.SIGINT)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()    # the user's Ctrl-C
    start = time.monotonic()
    try:
        assert analyse(two_lms[0], tmp_path / "out", "--workers", "2") == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 3


@pytest.mark.parametrize("make, message", [
    (lambda path: os.symlink("/dev/zero", path), "is not a regular file"),
    (lambda path: os.mkfifo(path), "is not a regular file"),
    (lambda path: open(path, "w").write("# " + "x" * (1 << 20) + "\n"), "larger than 1024 KiB"),
])
def test_class_files_are_checked_before_they_are_read(tmp_path, make, message):
    path = str(tmp_path / "classes.txt")
    make(path)
    with pytest.raises(corpus.CorpusError, match=message):
        own_text.read_scheme(path)


def test_a_reserved_word_form_in_word_tag_text_names_its_line(tmp_path):
    with pytest.raises(corpus.CorpusError, match=r"mine.txt:2: the word form '<unk>' is reserved"):
        own_text.read_word_tag(["the/AT cat/NN", "an/AT <unk>/NN"], "mine.txt")


@pytest.fixture
def own_lm(tmp_path):
    """A small LM trained on a word/TAG file of the toy language; returns (checkpoint, text file)."""
    text = tmp_path / "mine.txt"
    text.write_text("\n".join(" ".join(f"{w}/{t}" for w, t, _ in sent)
                              for doc in languages.generate_documents(seed=0) for sent in doc) + "\n")
    out = str(tmp_path / "mine.npz")
    options = [o for o in SMALL_LM_ARGS if o not in ("--corpus", "generated")]
    assert train.main([*options, "--corpus", str(text), "--epochs", "1", "--out", out]) == 0
    return out, text


def test_a_corpus_re_tagged_after_training_is_named(own_lm, tmp_path, capsys):
    checkpoint, text = own_lm
    text.write_text(text.read_text().replace("/JJ ", "/RB ", 40))         # some adjectives retagged
    assert analyse(checkpoint, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"{checkpoint} was trained on {text} as it was then" in err and err.count("\n") == 1


def test_a_corpus_removed_after_training_names_the_checkpoint(own_lm, tmp_path, capsys):
    checkpoint, text = own_lm
    text.unlink()
    assert analyse(checkpoint, tmp_path / "out") == 1
    assert f"error: {checkpoint} was trained on {text}: no corpus named" in capsys.readouterr().err


def test_an_out_dir_never_mixes_two_runs(two_lms, tmp_path, capsys):
    out = tmp_path / "out"
    assert analyze.main(["--device", DEVICE, "--checkpoints", two_lms[0], "--out-dir", str(out),
                         "--max-delay", "2", "--no-progress", "--classifier-seeds", "1"]) == 0
    assert (out / "table2.md").exists()
    assert analyse(two_lms[0], out) == 0                                  # --no-table2
    assert not (out / "table2.md").exists() and not (out / "table2.csv").exists()
    assert "removed" in capsys.readouterr().err


def test_a_full_out_dir_names_the_file(two_lms, tmp_path, capsys, monkeypatch):
    import matplotlib.figure

    def full_disk(self, handle, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    assert analyse(two_lms[0], tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'out' / 'validation.png'}: No space left on device" in err
