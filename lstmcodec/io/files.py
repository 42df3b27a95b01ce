"""Reading and writing files: whole-file reads with one-line errors, the image files of folders, torch objects saved
atomically, and the one routine that writes every output.

An output is written as a whole or not at all. A regular file (or a missing one) is written to a temporary file
beside it and renamed over it, so a failure or an interruption never leaves half a file; the temporary is removed
on an error, on Ctrl-C, and on SIGTERM / SIGHUP (the command line turns those into `Terminated`). A symbolic link is
written through: its target is replaced the same way and the link stays. A FIFO or a character device (a terminal,
/dev/null, /dev/stdout) is opened and written in place, as a shell's `>` would; a directory, a socket or a block
device is refused. A new file gets the mode the umask allows (0666 & ~umask, as `>` gives); a replaced file keeps its
mode.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any, Sequence

from lstmcodec.errors import CodecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def list_images(folders: Sequence[str | Path]) -> list[Path]:
    """The image files of folders (recursively, sorted) and of files named directly; FileNotFoundError if none."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
            continue
        if not folder.is_dir():
            raise FileNotFoundError(f"no such image folder: {folder}")
        # regular files only: a FIFO (or a device) named *.png in a folder would block or never end a read
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, folders))}")
    return files


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written weights file or
    checkpoint."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_TEMPORARIES: set[str] = set()   # temporaries being written now (removed by remove_temporaries on a signal)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived (raised by the command line's handler, so that `finally` blocks and the
    temporary-file clean-up below run)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def read_file(path) -> bytes:
    """The bytes of a file, or CodecError with a one-line reason."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise CodecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{path}: is a directory") from None
    except OSError as e:
        raise CodecError(f"{path}: cannot read ({e.strerror})") from None


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` as the module's docstring says; CodecError with a one-line reason where it cannot."""
    text = os.fspath(path)
    if text.endswith(os.sep):
        raise CodecError(f"{text}: a folder name, not a file name (give the file, or -d for a folder of outputs)")
    path = Path(text)
    try:
        st = os.stat(path)   # what the path is, through any links
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise CodecError(f"{path}: cannot write ({e.strerror})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            _write_in_place(path, data)
            return
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode) else \
            "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"
        raise CodecError(f"{path}: is {kind}; not written")
    if path.is_symlink():   # written through: the target is replaced (or created), the link stays
        path = Path(os.path.realpath(path))
    _replace(path, data, stat.S_IMODE(st.st_mode) if st is not None else None)


def _write_in_place(path: Path, data: bytes) -> None:
    """A FIFO or a character device: opened for writing (a FIFO waits for its reader) and written."""
    try:
        with open(path, "wb", buffering=0) as fh:
            view = memoryview(data)
            while view:
                view = view[fh.write(view):]
    except OSError as e:
        raise CodecError(f"{path}: cannot write ({e.strerror})") from None


def _replace(path: Path, data: bytes, mode: int | None) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`: never a partial file. The temporary is
    created with mode 0666, which the kernel cuts by the umask (reading the umask would mean setting it, a race with
    other threads), or given `mode`, the replaced file's."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CodecError(f"{path}: the folder {directory} does not exist")
    if len(os.fsencode(path.name)) > 255:
        raise CodecError(f"{path.name[:40]}...: the file name is longer than 255 bytes")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:   # a short name of its own: a file name of up to 255 bytes still leaves room for the temporary's
        tmp = str(directory / f".lstmcodec-{secrets.token_hex(6)}.part")
        try:
            fd = os.open(tmp, flags, 0o666 if mode is None else 0o600)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise CodecError(f"{path}: cannot write ({e.strerror})") from None
    _TEMPORARIES.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CodecError(f"{path}: cannot write ({e.strerror})") from None
        raise
    finally:
        _TEMPORARIES.discard(tmp)


def remove_temporaries() -> None:
    """Remove the temporaries being written now (a signal handler's last act before the process ends)."""
    for tmp in list(_TEMPORARIES):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _TEMPORARIES.discard(tmp)
