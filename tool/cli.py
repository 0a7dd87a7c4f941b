"""What both scripts need around the method: option types with their ranges, the device, the
machine's name, Ctrl-C as a flag, and one wrapper that turns errors into exit statuses."""
from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import sys

import numpy as np

import lstm_memory


def checked(kind, allowed: str, test):
    """An argparse ``type``: ``kind(text)`` if ``test`` holds, else an error naming ``allowed``."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {text}")
        return value
    return convert


def at_least(low: int):
    """An integer option >= ``low``."""
    return checked(int, f"an integer >= {low}", lambda n: n >= low)


COUNT = at_least(1)
NATURAL = at_least(0)
POSITIVE = checked(float, "a number > 0", lambda x: 0 < x < math.inf)
NONNEGATIVE = checked(float, "a number >= 0", lambda x: 0 <= x < math.inf)
BELOW_ONE = checked(float, "in [0, 1)", lambda x: 0 <= x < 1)
DECAY = checked(float, "in (0, 1]", lambda x: 0 < x <= 1)
DEVICES = ("auto", "cpu", "gpu")
DEVICE_HELP = "auto: CuPy when it sees a GPU, else NumPy"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each default shown once: not for options without one (None, a flag's False)
    nor where the help text already says what the default is."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def cache_home() -> str:
    """The folder for caches: $XDG_CACHE_HOME/state-gradients, else ~/.cache/state-gradients."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "state-gradients")


def backend(device: str = "auto"):
    """The array module for ``--device`` in DEVICES: numpy or cupy."""
    if device not in DEVICES:
        raise ValueError(f"--device must be auto, cpu or gpu, not {device!r}")
    if device == "cpu" or (device == "auto" and not lstm_memory.gpu_available()):
        return np
    if not lstm_memory.gpu_available():
        raise RuntimeError("--device gpu was asked for, but CuPy or a CUDA device is missing "
                           "(pip install cupy-cuda12x, or use --device cpu)")
    return lstm_memory.cupy


def machine_name(xp) -> str:
    """'NVIDIA H100 ...' on a GPU, else the CPU model and its number of cores."""
    if xp is not np:  # pragma: no cover - GPU only
        return xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def blas_threads() -> int:
    """The threads of the BLAS library (OPENBLAS_NUM_THREADS and the like): as many workers
    share the streams of a window (tool/parallel.py)."""
    from threadpoolctl import threadpool_info

    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"),
               default=1)


class Interrupt:
    """Turns Ctrl-C into a flag that a loop checks between steps, so a save is never torn."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:          # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: saving after this window ...", file=sys.stderr)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


class Stopped(Exception):
    """Ctrl-C during the work: what was finished is saved, the run ends with status 130."""


def exit_status(body, errors: tuple, interrupted: str, folders=()) -> int:
    """Run ``body()`` and return the scripts' exit status: 0 done, 1 an error of ``errors`` or
    an OSError (one line on stderr, no traceback), 130 Ctrl-C (``Stopped``'s message, or
    ``interrupted`` for a Ctrl-C outside the loops). Those of ``folders`` that the run created
    are removed again when it fails and leaves them empty."""
    new = []                                     # the folders that do not exist yet, deepest first
    for folder in map(os.path.abspath, folders):
        while not os.path.exists(folder):
            new.append(folder)
            folder = os.path.dirname(folder)
    status = _status(body, errors, interrupted)
    for folder in sorted(set(new), key=len, reverse=True) if status else ():
        try:
            os.rmdir(folder)                     # only if empty
        except OSError:
            pass
    return status


def _status(body, errors: tuple, interrupted: str) -> int:
    """``exit_status`` without the folders."""
    try:
        body()
    except (Stopped, KeyboardInterrupt) as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)     # a second Ctrl-C: nothing more to do
        print(stop if isinstance(stop, Stopped) else interrupted, file=sys.stderr)
        return 130
    except errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    return 0
