"""The one-call API: encode / decode with a codec chosen by name (encode) or by the file's header (decode).

    data = lstmcodec.encode("photo.png", iterations=8)
    image = lstmcodec.decode(data, iterations=2)
"""
from __future__ import annotations

import os
from typing import Iterator

from PIL import Image

from lstmcodec.format import container
from lstmcodec.models import zoo
from lstmcodec.coding.codec import Codec
from lstmcodec.coding.framing import EncodeResult
from lstmcodec.coding.tensors import check_size
from lstmcodec.io.files import read_file
from lstmcodec.io.imageio import SourceImage, open_image, prepare


def encoder(src: SourceImage, model: str = "default", device: str = "cpu") -> Codec:
    """The codec that encodes `src`: the size cap is checked before any network is loaded."""
    h, w = src.rgb.shape[:2]
    check_size(w, h)
    return zoo.load_codec(model, device)


def encode_image(src: SourceImage, iterations: int = 8, model: str = "default", device: str = "cpu",
                 tiles: int | str = "auto", on_iteration=None) -> EncodeResult:
    """Encode a prepared image with a bundled model (or a weights path); the result carries the notices to show."""
    return encoder(src, model, device).encode_source(src, iterations, tiles, on_iteration)


def encode(image, iterations: int = 8, model: str = "default", device: str = "cpu", tiles: int | str = "auto") -> bytes:
    """Compress an image (path, PIL image, bytes or H x W x 3 uint8 array) to .lstm bytes.
    tiles: "auto" (images over 2^21 pixels in overlapping 1024-px tiles), "off", or a tile side in pixels."""
    return encode_image(prepare(open_image(image)), iterations, model, device, tiles).data


def decoder(data: bytes, model: str | None = None, device: str = "cpu") -> Codec:
    """The codec for a file: the bundled model its header names, or `model` (a name or weights path)."""
    return zoo.codec_for(container.read_header(data)[0], model, device)


def _bytes(data) -> bytes:
    return read_file(data) if isinstance(data, (str, os.PathLike)) else bytes(data)


def decode(data, iterations: int | None = None, model: str | None = None, device: str = "cpu") -> Image.Image:
    """Decode .lstm bytes (or a path) to a PIL image, using the first `iterations` iterations (all by default).

    `model` overrides the bundled model named in the header (a name or a path to a weights file); either way
    the weights' fingerprint must match the header's, or the file is refused."""
    data = _bytes(data)
    return decoder(data, model, device).decompress(data, iterations)


def decode_progressive(data, iterations: int | None = None, model: str | None = None,
                       device: str = "cpu") -> Iterator[Image.Image]:
    """Yield the decoded image after each iteration 1..iterations: one decoder pass for every prefix
    (for a tiled file, one pass per prefix). The k-th image equals decode(data, iterations=k)."""
    data = _bytes(data)
    yield from decoder(data, model, device).decompress_progressive(data, iterations)
