"""Output files written whole: a file is written to a temporary name beside it and renamed, so
that an interruption or a full disk leaves the earlier file as it was."""
from __future__ import annotations

import os
import tempfile


def temporary_prefix(path: str) -> str:
    """The name start of ``save_checkpoint(path)``'s temporary files: runs/x.npz -> .tmp-x.npz-"""
    return f".tmp-{os.path.basename(path)}-"


def atomic_write(path: str, write, mode: str = "wb") -> None:
    """Call write(file) on a temporary file beside ``path`` (``temporary_prefix``), then rename
    it to ``path``. The folder must exist; the file gets the permissions the umask gives any new
    file. An OSError (disk full, folder gone) leaves an earlier file at ``path`` as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=temporary_prefix(path),
                               suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)              # mkstemp's 0600 -> what open() would give
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(error, OSError) and not error.filename:    # a full disk: name the file
            raise OSError(error.errno, error.strerror or str(error), path) from None
        raise


def probe_folder(folder: str, prefix: str = ".probe-") -> None:
    """Create ``folder`` and prove it writable with a file made and removed (OSError if not)."""
    os.makedirs(folder, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=prefix)
    os.close(fd)
    os.remove(probe)


def remove_stale_temporaries(path: str) -> list:
    """Remove the temporary files that interrupted saves to ``path`` left beside it; returns them."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = temporary_prefix(path)
    stale = [os.path.join(directory, name) for name in os.listdir(directory)
             if name.startswith(prefix) and name.endswith(".npz")]
    for name in stale:
        os.remove(name)
    return stale
