"""Where outputs go: special files and links written through, modes that follow the umask or the replaced file,
folder names, long names, and temporaries removed on errors and signals (lstmcodec/io/files.py)."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from lstmcodec.io import files
from lstmcodec.errors import CodecError

from conftest import DATA, run_cli

PARROTS = DATA / "parrots.png"


def _one_error(r: subprocess.CompletedProcess, code: int = 1) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "out.lstm"
    os.mkfifo(fifo)
    got = {}

    def reader():
        with open(fifo, "rb") as fh:
            got["data"] = fh.read()

    t = threading.Thread(target=reader)
    t.start()
    r = run_cli("encode", PARROTS, "-i", "2", "-o", fifo)
    t.join(60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got["data"][:4] == b"LSTM" or len(got["data"]) > 100


def test_a_symlink_is_written_through(tmp_path):
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    lstm = tmp_path / "p.lstm"
    assert run_cli("encode", PARROTS, "-i", "2", "-o", lstm).returncode == 0
    r = run_cli("decode", lstm, "-o", link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_dangling_default_name_is_not_replaced_without_force(tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(PARROTS.read_bytes())
    (tmp_path / "a.lstm").symlink_to(tmp_path / "elsewhere.lstm")
    err = _one_error(run_cli("encode", src, "-i", "1"))
    assert "already exists" in err
    assert (tmp_path / "a.lstm").is_symlink() and not (tmp_path / "elsewhere.lstm").exists()
    assert run_cli("encode", src, "-i", "1", "--force").returncode == 0
    assert (tmp_path / "a.lstm").is_symlink() and (tmp_path / "elsewhere.lstm").stat().st_size > 0


def test_a_character_device_is_written_through(tmp_path):
    node = tmp_path / "fakenull"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    r = run_cli("encode", PARROTS, "-i", "1", "-o", node)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_a_socket_or_folder_name_is_refused(tmp_path):
    err = _one_error(run_cli("encode", PARROTS, "-i", "1", "-o", str(tmp_path / "newdir") + "/"))
    assert "folder name" in err and not (tmp_path / "newdir").exists()
    import socket
    path = tmp_path / "s.lstm"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        err = _one_error(run_cli("encode", PARROTS, "-i", "1", "-o", path))
    assert "socket" in err and _leftovers(tmp_path) == []


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    def umask077():
        os.umask(0o077)

    new = tmp_path / "new.lstm"
    r = subprocess.run([sys.executable, "-m", "lstmcodec", "encode", str(PARROTS), "-i", "1", "-o", str(new)],
                       capture_output=True, preexec_fn=umask077, timeout=300)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    old = tmp_path / "old.lstm"
    old.write_bytes(b"x")
    old.chmod(0o640)
    assert run_cli("encode", PARROTS, "-i", "1", "-o", old).returncode == 0
    assert stat.S_IMODE(old.stat().st_mode) == 0o640 and old.stat().st_size > 1


def test_long_names(tmp_path):
    src = tmp_path / ("p" * 250 + ".png")   # its default output name, p...p.lstm, is 255 bytes: writable
    src.write_bytes(PARROTS.read_bytes())
    r = run_cli("encode", src, "-i", "1")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ("p" * 250 + ".lstm")).exists() and _leftovers(tmp_path) == []
    src2 = tmp_path / ("q" * 251 + ".png")   # 255 bytes, and q...q.lstm would be 256
    src2.write_bytes(PARROTS.read_bytes())
    err = _one_error(run_cli("encode", src2, "-i", "1"))
    assert "too long" in err.lower() and _leftovers(tmp_path) == []


def test_a_signal_during_the_write_removes_the_temporary(tmp_path, monkeypatch):
    def interrupted(_fd):
        raise files.Terminated(signal.SIGTERM)

    monkeypatch.setattr(files.os, "fsync", interrupted)
    with pytest.raises(files.Terminated):
        files.atomic_write(tmp_path / "x.lstm", b"data" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_refuses_in_one_line(tmp_path):
    with pytest.raises(CodecError, match="does not exist"):
        files.atomic_write(tmp_path / "no" / "x.lstm", b"")
    with pytest.raises(CodecError, match="is a directory"):
        files.atomic_write(tmp_path, b"")


def test_library_use_from_threads_leaves_stderr_and_warnings_alone(parrots):
    """Six threads of 25 encodes each: fd 2 still the same file, warnings.filters as they were."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import lstmcodec

    small = parrots[:48, :48]
    lstmcodec.encode(small, iterations=1)   # imports and loads first: importing torch adds filters of its own
    before_fd, before_filters = os.fstat(2), list(warnings.filters)

    def work(_):
        return [len(lstmcodec.encode(small, iterations=1)) for _ in range(25)]

    with ThreadPoolExecutor(6) as pool:
        sizes = [n for ns in pool.map(work, range(6)) for n in ns]
    after = os.fstat(2)
    assert len(set(sizes)) == 1 and len(sizes) == 150
    assert (after.st_dev, after.st_ino) == (before_fd.st_dev, before_fd.st_ino)
    assert list(warnings.filters) == before_filters


@pytest.mark.parametrize("sig, code, line", [(signal.SIGTERM, 128 + signal.SIGTERM, b"error: terminated\n"),
                                             (signal.SIGHUP, 128 + signal.SIGHUP, b"error: terminated\n"),
                                             (signal.SIGINT, 130, b"error: interrupted\n")])
def test_a_signal_during_an_encode_is_exactly_one_line_and_nothing_left(tmp_path, sig, code, line):
    src = tmp_path / "big.png"
    from PIL import Image
    Image.open(PARROTS).resize((1536, 1152)).save(src)
    p = subprocess.Popen([sys.executable, "-m", "lstmcodec", "encode", str(src), "-i", "16", "-o",
                          str(tmp_path / "big.lstm")], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    time.sleep(4)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the encode finished before the signal")
    assert (p.returncode, err) == (code, line)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.png"]

