"""The library's conventions: bad input is CodecError (a ValueError) with one line, the Pillow plugin raises
OSError as Pillow's own plugins do and saves .lstm files, weights load from any path."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

import lstmcodec
from lstmcodec import CodecError

from conftest import DATA

PARROTS = DATA / "parrots.png"


@pytest.mark.parametrize("call", [
    lambda: lstmcodec.encode(np.zeros((0, 0, 3), np.uint8)),
    lambda: lstmcodec.encode(np.zeros((0, 7, 3), np.uint8)),
    lambda: lstmcodec.encode(Image.new("RGB", (9, 0))),
    lambda: lstmcodec.encode(PARROTS, device="bogus"),
    lambda: lstmcodec.encode(PARROTS, device=3),
    lambda: lstmcodec.encode(PARROTS, iterations=2.0),
    lambda: lstmcodec.encode(PARROTS, iterations="2"),
    lambda: lstmcodec.encode(PARROTS, iterations=True),
    lambda: lstmcodec.decode(lstmcodec.encode(PARROTS, iterations=2), iterations=1.5),
])
def test_bad_arguments_are_codec_errors(call):
    with pytest.raises(CodecError) as e:
        call()
    assert "\n" not in str(e.value)


def test_numpy_integers_are_iteration_counts():
    assert lstmcodec.info(lstmcodec.encode(PARROTS, iterations=np.int64(2))).iterations == 2


def test_info_takes_a_path_as_decode_does(tmp_path):
    path = tmp_path / "p.lstm"
    path.write_bytes(lstmcodec.encode(PARROTS, iterations=2))
    assert lstmcodec.info(path).iterations == lstmcodec.info(str(path)).iterations == 2
    with pytest.raises(CodecError, match="no such file"):
        lstmcodec.info(tmp_path / "missing.lstm")


def test_the_plugin_raises_oserror_and_saves(tmp_path):
    data = lstmcodec.encode(PARROTS, iterations=2)
    bad = tmp_path / "bad.lstm"
    bad.write_bytes(data[:-5])
    with pytest.raises(OSError, match="truncated"):
        with Image.open(bad) as im:
            im.load()
    out = tmp_path / "saved.lstm"
    Image.open(PARROTS).save(out, iterations=3)
    assert lstmcodec.info(out).iterations == 3
    with Image.open(out) as im:
        assert im.format == "LSTM" and im.size == Image.open(PARROTS).size
    with pytest.raises(OSError):
        Image.open(PARROTS).save(tmp_path / "x.lstm", iterations=0)


def test_a_weights_path_without_a_suffix_loads(tmp_path):
    plain = tmp_path / "myweights"
    shutil.copy(DATA.parent.parent / "weights" / "fast.pt", plain)
    codec = lstmcodec.load_model(str(plain))
    assert codec.name == "fast"
