"""Usage errors are exit 2 and one line, before any work: numbers that are not numbers, tile sides the tiling
cannot make, unknown formats, options that do nothing; bench folders list regular files only."""
from __future__ import annotations

import os
import threading

import pytest

from conftest import DATA, run_cli

PARROTS = str(DATA / "parrots.png")


@pytest.mark.parametrize("args, words", [
    (["encode", PARROTS, "--quality", "nan"], "finite"),
    (["encode", PARROTS, "--bpp", "nan"], "finite"),
    (["encode", PARROTS, "--bpp", "inf"], "finite"),
    (["encode", PARROTS, "--tiles", "0"], "tile side"),
    (["encode", PARROTS, "--tiles", "17"], "tile side"),
    (["encode", PARROTS, "--tiles", "48"], "tile side"),
    (["encode", PARROTS, "--tile", "64"], "--adaptive"),
    (["decode", "x.lstm", "--format", "bogus"], "not an image format"),
    (["decode", "x.lstm", "-o", "out.bogus"], "unknown output format"),
    (["bench", PARROTS, "--limit", "0"], "--limit"),
    (["bench", PARROTS, "--plot", "x.bogus"], "--plot"),
])
def test_usage_errors_are_exit_2_before_any_work(tmp_path, args, words):
    r = run_cli(*args, cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert words in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_in_a_bench_folder_is_not_read(tmp_path):
    (tmp_path / "a.png").write_bytes((DATA / "parrots.png").read_bytes())
    os.mkfifo(tmp_path / "b.png")
    from lstmcodec.io.files import list_images

    result = {}
    t = threading.Thread(target=lambda: result.setdefault("files", list_images([tmp_path])), daemon=True)
    t.start()
    t.join(10)
    assert [p.name for p in result["files"]] == ["a.png"]
