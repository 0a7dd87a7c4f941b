"""Checkpoints: one .npz per LM (the arrays of lstm_memory.PARAM_SHAPES, the vocabulary, JSON
metadata), written whole (tool/files.py) and refused with one sentence (``CheckpointError``) when
missing, truncated or foreign."""
from __future__ import annotations

import argparse
import json
import os
import zipfile
import zlib

import numpy as np

from cells import CELLS
from lstm_memory import PARAM_SHAPES, to_numpy
from tool.files import atomic_write


class CheckpointError(Exception):
    """A checkpoint that cannot be read, used or written, with a message of one sentence."""


def save_checkpoint(path: str, params: dict, vocab, meta: dict, extra: dict | None = None) -> None:
    """Write params, vocabulary and metadata to ``path`` with ``atomic_write``.

    Layout: the six arrays of PARAM_SHAPES (gate order i, f, g, o along 4H; a GRU's 3H, an RNN's
    H), ``vocab`` (V,) str, ``meta`` a JSON string (corpus, split, settings with the cell,
    history), and any ``extra`` arrays.
    """
    arrays = {name: to_numpy(value) for name, value in params.items()}
    arrays["vocab"] = np.asarray(vocab, dtype=str)
    arrays["meta"] = np.asarray(json.dumps(meta))
    arrays.update({name: to_numpy(value) for name, value in (extra or {}).items()})
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def check_vocab(path: str, checkpoint_vocab, corpus_vocab) -> None:
    """Refuse a checkpoint whose vocabulary is not the one the corpus and its settings give."""
    if list(checkpoint_vocab) != list(corpus_vocab):
        raise CheckpointError(f"{path} does not match the corpus: it was trained with another "
                              "vocabulary (other corpus, --vocab-size or --max-train-tokens)")


def check_setting_values(path: str, saved: dict, parser, keys) -> None:
    """Refuse a saved setting of ``keys`` that the command line (``parser``, train.py's) would
    refuse: outside its option's range or choices, or not of its type. One sentence naming the
    file and the option."""
    actions = {action.dest: action for action in parser._actions}
    for key in keys:
        action, value = actions.get(key), saved.get(key)
        if key not in saved or action is None or (value is None and action.default is None):
            continue
        option = "--" + key.replace("_", "-")
        if action.choices is not None:
            refused = value not in action.choices
        elif action.type is None:                                  # a flag: its default's type
            refused = action.default is not None and not isinstance(value, type(action.default))
        else:
            try:
                converted = action.type(str(value))
                refused = isinstance(value, bool) or (isinstance(value, (int, float))
                                                      and converted != value)
            except (argparse.ArgumentTypeError, ValueError, TypeError):
                refused = True
        if refused:
            raise CheckpointError(f"{path} holds the setting {option} {value!r:.40}, which the "
                                  "command line refuses: it was not written by this train.py")


META_FIELDS = {"format": str, "settings": dict, "train": dict}   # the fields ``required`` may name


def cell_of(meta: dict):
    """The cell (cells.CELLS) a checkpoint's metadata names; LSTM when it names none."""
    settings = meta.get("settings")
    return CELLS[settings.get("cell", "lstm") if isinstance(settings, dict) else "lstm"]


def peek_cell(path: str):
    """The cell a checkpoint names, from its metadata alone (no arrays read); None when that
    cannot be read (``load_checkpoint`` then says why)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return cell_of(json.loads(str(data["meta"])))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile,
            EOFError, zlib.error):
        return None


def load_checkpoint(path: str, required=()):
    """Read a checkpoint written by ``save_checkpoint``: (params, vocab list, meta dict, extra).

    Args:
        path: the .npz file.
        required: metadata fields that must be there, of META_FIELDS ("format" a string,
            "settings" and "train" JSON objects; train.py's checkpoints have all three).
    Raises CheckpointError with one sentence for a missing, truncated or foreign file: arrays
    missing, of the wrong rank, shape or dtype kind (params float, vocab str), non-finite float
    arrays, metadata that is not a JSON object or lacks a required field.
    """
    arrays = _read_arrays(path)
    missing = [name for name in (*PARAM_SHAPES, "vocab", "meta") if name not in arrays]
    if missing:
        raise CheckpointError(f"{path} is not an LSTM LM checkpoint: it lacks {', '.join(missing)}")
    meta = _read_meta(path, arrays.pop("meta"), required)
    settings = meta.get("settings")
    cell = settings.get("cell", "lstm") if isinstance(settings, dict) else "lstm"
    if not isinstance(cell, str) or cell not in CELLS:
        raise CheckpointError(f"{path} names the cell {cell!r:.40}, not one of "
                              f"{', '.join(CELLS)}: it was not written by this train.py")
    G = cell_of(meta).gates                                   # gate blocks of H rows
    vocab = arrays.pop("vocab")
    if vocab.ndim != 1 or vocab.dtype.kind != "U":
        raise CheckpointError(f"{path} is not an LSTM LM checkpoint: its vocab is a "
                              f"{vocab.ndim}-D {vocab.dtype} array, not a list of words")
    params = {name: arrays.pop(name) for name in PARAM_SHAPES}
    for name, letters in PARAM_SHAPES.items():
        if params[name].ndim != len(letters) or params[name].dtype.kind != "f":
            raise CheckpointError(f"{path} is not an LSTM LM checkpoint: {name} is a "
                                  f"{params[name].ndim}-D {params[name].dtype} array, expected a "
                                  f"{len(letters)}-D float array ({', '.join(letters)})")
    V, E = params["embedding"].shape
    H = params["W_h"].shape[1]
    expected = {"embedding": (V, E), "W_x": (G * H, E), "W_h": (G * H, H), "b": (G * H,),
                "W_out": (V, H), "b_out": (V,)}
    for name, shape in expected.items():
        if params[name].shape != shape:
            raise CheckpointError(f"{path} is inconsistent: {name} has shape {params[name].shape}, "
                                  f"expected {shape}")
    if len(vocab) != V:
        raise CheckpointError(f"{path} is inconsistent: {len(vocab)} words for {V} embeddings")
    for name, value in {**params, **arrays}.items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise CheckpointError(f"{path} holds non-finite values in {name}: it cannot be used")
    return params, [str(w) for w in vocab], meta, arrays


def _read_arrays(path: str) -> dict:
    """All arrays of the .npz file ``path`` by name; CheckpointError if it is not one."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with open(path, "rb") as handle:
            data = np.load(handle, allow_pickle=False)
            if not hasattr(data, "files"):                    # a .npy file: one bare array
                raise ValueError("one array")
            with data:
                return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or not an .npz "
                              f"written by train.py: {type(error).__name__})") from None


def _read_meta(path: str, text, required) -> dict:
    """The metadata (a JSON object in a 0-d str array), with the ``required`` fields of META_FIELDS."""
    try:
        meta = json.loads(str(text)) if text.ndim == 0 and text.dtype.kind == "U" else None
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} has unreadable metadata (not JSON)") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has metadata that is not a JSON object: it was not written "
                              "by train.py")
    missing = [field for field in required if field not in meta]
    if missing:
        raise CheckpointError(f"{path} lacks the metadata field(s) {', '.join(missing)}: it was "
                              "not written by train.py")
    for field in required:
        if not isinstance(meta[field], META_FIELDS[field]):
            raise CheckpointError(f"{path} has a metadata field {field} that is not a "
                                  f"{'JSON object' if META_FIELDS[field] is dict else 'string'}")
    return meta
