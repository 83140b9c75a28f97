"""The one home of every result write: atomic files, and an exclusive lock on an output place.

A result is serialized in memory first (netCDF through h5netcdf into bytes, a figure into PNG bytes, text into
UTF-8), then written to a temporary file beside the target, flushed to disk (`fsync`) and renamed over it
(`atomic_write`). HDF5 therefore never writes to the filesystem itself: a disk that fills up fails in a plain
`os.write`, as one `OSError` that says what happened and what was kept ("No space left on device while writing
'out.nc' (2.1 MB); the previous file is kept unchanged"), instead of HDF5 failing inside its finalizers on
a half-written file (a cascade of tracebacks and a segmentation fault).

`lock_output(out)` takes an exclusive `fcntl.flock` on the hidden file `.NAME.lock` beside an output file or
folder, held until `release_outputs()` (the CLI's error path calls it at the end of every command) or the end of
the process (the kernel drops the lock of a process that dies, so a crash never leaves a stale lock): a second
run on the same output is refused in one line.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "netcdf_bytes", "save_netcdf", "save_figure", "describe_size", "lock_output", "held_outputs", "write_all",
           "release_outputs", "lock_path"]

Content = bytes | bytearray | memoryview | str | Callable[[str], None]


def describe_size(n: float) -> str:
    """A byte count for a message: `2.1 MB`, `13 kB`, `512 B`."""
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.3g} {unit}"
    return f"{int(n)} B"


def write_all(fd: int, data) -> None:
    """Write every byte of `data` to the file descriptor `fd` (the one place bytes reach a disk: faults are
    injected here in the tests)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def atomic_write(path: str | os.PathLike, content: Content) -> Path:
    """Write `content` to `path` atomically: into a temporary file in the target's directory, `fsync`, rename.

    `content`: bytes (or a `memoryview`), a `str` (written as UTF-8), or a callable `write(tmp)` that writes the
    temporary file by name (for writers that only take a file name). An interrupted run leaves either the old
    file or none, never a partial file under `path`. **Raises:** `OSError` with the errno of the failure and a
    message that says what was kept: the previous `path` unchanged, or nothing (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            if callable(data):
                os.close(fd)
                fd = -1
                data(tmp)
                fd = os.open(tmp, os.O_RDONLY)
            else:
                write_all(fd, data)
            os.fsync(fd)  # where a full disk is reported late (delayed allocation, NFS), it is reported here
        finally:
            if fd >= 0:
                os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            size = "" if callable(data) else f" ({describe_size(memoryview(data).nbytes)})"
            kept = "the previous file is kept unchanged" if existed else "nothing was written there"
            raise OSError(e.errno, f"{e.strerror or e} while writing {str(path)!r}{size}; {kept}") from None
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def netcdf_bytes(ds) -> memoryview:
    """An `xarray.Dataset` as netCDF-4 bytes (h5netcdf engine), serialized in memory: HDF5 touches no file."""
    return ds.to_netcdf(engine="h5netcdf")


def save_netcdf(ds, path) -> Path:
    """Write an `xarray.Dataset` to netCDF-4 (h5netcdf engine) atomically (`netcdf_bytes`, `atomic_write`)."""
    return atomic_write(path, netcdf_bytes(ds))


def save_figure(fig, path, **kw) -> Path:
    """Save a matplotlib figure atomically (format from the suffix of `path`; rendered in memory first)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, **kw)
    return atomic_write(path, buf.getbuffer())


# ---- an exclusive lock on an output place ---------------------------------------------------------------------

_HELD: dict[Path, tuple[int, Path]] = {}  # output (absolute) -> (fd of its lock file, lock file)


def lock_path(out: str | os.PathLike) -> Path:
    """The lock file of an output file or folder: `.NAME.lock` beside it."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


def _holder(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def lock_output(out: str | os.PathLike, flag: str = "--out") -> None:
    """Hold an exclusive lock on the output `out` (a file or folder) until `release_outputs()` or the end of this
    process; a second call for the same output in this process is a no-op.

    **Raises:** `ValueError` (one line, naming `flag`) when another process holds it, unless that process is this
    one's parent (`byoldyn.launch` takes the lock for the processes of its job). Where the filesystem cannot lock
    (`flock` unsupported), the output is written unlocked.
    """
    out = Path(out).absolute()
    if out in _HELD:
        return
    lock = lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return  # no locks on this filesystem
            if holder is not None and holder == os.getppid():
                return  # the launcher of this job holds it
            who = f" (pid {holder})" if holder is not None else ""
            raise ValueError(f"{flag} {str(out)!r} is in use by another byoldyn run{who}; wait for it to finish "
                             f"or use another {flag}") from None
        try:  # the file locked is still the one at `lock` (a finishing run removes its lock file)
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[out] = (fd, lock)


def held_outputs() -> tuple[Path, ...]:
    """The outputs whose locks this process holds (`lock_output`)."""
    return tuple(_HELD)


def release_outputs() -> None:
    """Release every output lock this process holds (and remove the lock files)."""
    while _HELD:
        _, (fd, lock) = _HELD.popitem()
        try:
            lock.unlink()  # while still locked: a process waiting on the old file sees it is gone and retries
        except OSError:
            pass
        os.close(fd)


atexit.register(release_outputs)
