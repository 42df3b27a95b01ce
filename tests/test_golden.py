"""Golden files: every bundled codec encodes the test photos to the checked-in bytes and decodes them to the
checked-in images (within 1 level), so that a change of the code provably changes no file
(scripts/make_golden.py writes them when a model changes on purpose)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lstmcodec.models import zoo

from conftest import DATA

GOLDEN = DATA / "golden"
CASES = {"parrots-i6": ("parrots.png", 6, "auto"), "houses-tiled-i3": ("houses.png", 3, 96),
         "parrots-i16": ("parrots.png", 16, "auto")}


def _files() -> list[Path]:
    return sorted(GOLDEN.glob("*.lstm"))


def test_every_bundled_codec_has_golden_files():
    made = {f.stem for f in _files()}
    for name in zoo.names("codec"):
        assert f"{name}-parrots-i6" in made, name
    assert f"{zoo.DEFAULT_CODEC}-houses-tiled-i3" in made and f"{zoo.DEFAULT_CODEC}-parrots-i16" in made


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.stem)
def test_encoding_gives_the_golden_bytes_and_decoding_the_golden_image(path):
    name, case = next((n, path.stem[len(n) + 1:]) for n in zoo.names("codec") if path.stem.startswith(n + "-"))
    photo, iterations, tiles = CASES[case]
    codec = zoo.load_codec(name, precision="fp32")   # the golden files are fp32's; bf16 is tested in test_precision
    data = codec.compress(DATA / photo, iterations, tiles)
    assert data == path.read_bytes(), f"{path.name}: the encoder's output changed"
    decoded = np.asarray(codec.decompress(path.read_bytes()), dtype=np.int16)
    golden = np.asarray(Image.open(path.with_suffix(".png")), dtype=np.int16)
    assert decoded.shape == golden.shape and np.abs(decoded - golden).max() <= 1


def test_a_file_of_the_default_written_before_its_linear_tail_decodes_as_it_did():
    """fast-0.3-parrots-i12.lstm was written by 0.3's `fast`, before its linear tail was fitted: the header records
    the weights' fingerprint without the tail, and all twelve iterations decode with the networks, as then."""
    path = DATA / "fast-0.3-parrots-i12.lstm"
    codec = zoo.load_codec("fast", precision="fp32")
    decoded = np.asarray(codec.decompress(path.read_bytes()), dtype=np.int16)
    golden = np.asarray(Image.open(path.with_suffix(".png")), dtype=np.int16)
    assert np.abs(decoded - golden).max() <= 1
