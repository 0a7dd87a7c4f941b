"""Shared test helpers: float64 central finite differences and hypothesis settings."""
import os
import sys

import numpy as np
import pytest
from hypothesis import settings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

settings.register_profile("default", deadline=None, max_examples=25, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of f (array -> array of any shape) w.r.t. every element of x (float64).

    Returns an array of shape f(x).shape + x.shape; x is restored afterwards.
    """
    out_shape = np.shape(f(x))
    grad = np.zeros(out_shape + x.shape)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        plus = np.array(f(x), dtype=np.float64)
        x[index] = old - eps
        minus = np.array(f(x), dtype=np.float64)
        x[index] = old
        grad[(Ellipsis,) + index] = (plus - minus) / (2 * eps)
    return grad


def random_lstm(seed, B, E, H):
    """Weights, non-zero biases and non-zero incoming state: gate mix-ups cannot hide."""
    rng = np.random.default_rng(seed)
    W_x = rng.normal(0, 0.6, (4 * H, E))
    W_h = rng.normal(0, 0.6, (4 * H, H))
    b = rng.normal(0, 0.5, 4 * H)
    h0, c0 = rng.normal(0, 1, (B, H)), rng.normal(0, 1, (B, H))
    return rng, W_x, W_h, b, h0, c0


# the device of the end-to-end tests (train.py, analyze.py): LSTM_MEMORY_TEST_DEVICE=gpu runs them
# on CuPy where a GPU is; the unit tests compare NumPy with finite differences wherever they run
DEVICE = os.environ.get("LSTM_MEMORY_TEST_DEVICE", "cpu")
SMALL_LM_ARGS = ["--device", DEVICE, "--corpus", "generated", "--embedding-size", "8", "--hidden-size",
                 "16", "--batch-size", "4", "--num-steps", "10", "--no-progress", "--cbow-min-count", "1"]


def train_small_lms(folder, variants):
    """Small LMs of the generated corpus, one per (name, more train.py options): their paths."""
    import train
    paths = []
    for name, options in variants:
        path = str(folder / f"{name}.npz")
        assert train.main([*SMALL_LM_ARGS, *options, "--out", path]) == 0
        paths.append(path)
    return paths


@pytest.fixture
def small_lm_args():
    """train.py options of a small LM on the generated corpus (trains in about a second an epoch)."""
    return list(SMALL_LM_ARGS)


def brown_available():
    try:
        import nltk
        nltk.data.find("corpora/brown/")
        return True
    except (LookupError, ImportError):
        return False


needs_brown = pytest.mark.skipif(not brown_available(),
                                 reason="the Brown corpus is not installed (set NLTK_DATA)")


@pytest.fixture(autouse=True, scope="session")
def cache_home(tmp_path_factory):
    """The scripts' cache folder (tool.cli.cache_home) in a temporary folder, never the user's."""
    folder = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = previous


def pytest_terminal_summary(terminalreporter):
    """Say which tests were skipped for want of the corpus, and how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "Brown" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"note: the Brown corpus was not found, so {len(skipped)} tests of the real corpus were "
            "skipped: set NLTK_DATA to a folder with corpora/brown.zip (docs/reproduction.md)")


@pytest.fixture(autouse=True)
def sigint_restored():
    """The scripts ignore Ctrl-C once they have handled one (their process is about to end); in
    the tests' one process, each test starts with the usual handler again."""
    import signal
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


@pytest.fixture(autouse=True, scope="session")
def one_blas_thread():
    """The tests' matrices are tiny: one BLAS thread is faster than several and does not compete
    with the threads of the threaded sweep."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        yield
