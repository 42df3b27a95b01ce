"""The Codec: a recurrent network with its entropy model and identity, which turns images into .lstm bytes and back,
one image or one batch of images of a size at a time.

    codec = lstmcodec.load_model("default")
    data = codec.compress("photo.png", iterations=8)        # bytes of a .lstm file
    image = codec.decompress(data, iterations=2)             # PIL.Image.Image, from any prefix
    out = codec(x, 16)                                       # training: out.x_hats, out.bits (RecurrentCodec.forward)

A Codec *is* the network (nets.recurrent.RecurrentCodec, so its state dict is the weights file's) and carries
what turns bits into bytes: the learned context table and mixer (format.entropy.PlaneCoder), its name and the
fingerprint that every file it writes records. Around it: framing.py (the file's bytes), large.py (tiles and regions
of large images), batching.py (many images), ratecontrol.py and adaptive.py (what to send).

Decoding a file: read (framing: container header and chunks, then format.entropy's planes) -> reconstructions
(nets: the decoder) -> Decoded.image (io.imageio).
"""
from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from lstmcodec.coding import framing, large
from lstmcodec.format import tiling
from lstmcodec.coding.framing import Decoded, EncodeResult
from lstmcodec.coding.tensors import (check_iteration_count, check_size, mask_tensor, memory_guard, plane_to_bits,
                                      to_rgb, to_tensor)
from lstmcodec.errors import CodecError
from lstmcodec.format.entropy import PlaneCoder
from lstmcodec.format.itermap import encode_map
from lstmcodec.format.mixer import Mixer
from lstmcodec.geometry import padded
from lstmcodec.io.imageio import SourceImage, open_image, prepare
from lstmcodec.nets.config import CodecConfig
from lstmcodec.nets.decoding import reconstruct
from lstmcodec.nets.recurrent import RecurrentCodec
from lstmcodec.nets.tail import Gate


class Codec(RecurrentCodec):
    """The network, its entropy model (a learned table and mixer, or neither) and its identity (name, fingerprint)."""

    def __init__(self, config: CodecConfig = CodecConfig(), name: str = "untrained", prior: np.ndarray | None = None,
                 mixer: Mixer | None = None, fingerprint: bytes | None = None, meta: dict | None = None):
        super().__init__(config)
        self.name, self.prior, self.mixer, self.meta = name, prior, mixer, meta or {}
        self._fingerprint, self._network_fingerprint = fingerprint, None

    @classmethod
    def from_weights(cls, path, blob: dict) -> "Codec":
        """The codec of a weights file's dict (weights.read gives it), every part checked; ValueError if it cannot be one."""
        from lstmcodec.models import weights

        try:
            config = CodecConfig.from_dict(blob["config"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: bad model configuration ({e})") from None
        codec = weights.build(path, blob, lambda: cls(config, blob["name"]))
        codec.prior, codec.mixer = weights.entropy_model(path, blob, config.bits)
        codec.set_tail(weights.tail_model(path, blob, config.bits))
        codec.meta, codec._fingerprint = blob.get("meta", {}), weights.codec_fingerprint(blob)
        codec._network_fingerprint = weights.codec_fingerprint(blob, tail=False)
        return codec

    def _blob(self) -> dict:
        from lstmcodec.models import weights
        return weights.codec_blob(self, self.name, self.config.to_dict(), entropy_prior=self.prior,
                                  entropy_mixer=self.mixer, tail=self.tail)

    @property
    def fingerprint(self) -> bytes:
        """What the header of every file this codec writes records (of its weights as a weights file stores them,
        the linear tail included)."""
        if self._fingerprint is None:
            from lstmcodec.models import weights
            self._fingerprint = weights.codec_fingerprint(self._blob())
        return self._fingerprint

    @property
    def network_fingerprint(self) -> bytes:
        """The fingerprint of these weights without their linear tail: what files written before the tail was
        fitted record (they decode with the networks alone). The same as `fingerprint` for a codec without a tail."""
        if self._network_fingerprint is None:
            from lstmcodec.models import weights
            self._network_fingerprint = weights.codec_fingerprint(self._blob(), tail=False)
        return self._network_fingerprint

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def for_inference(self, device: torch.device | str = "cpu", precision: str = "fp32") -> "Codec":
        """Eval mode without gradients, on `device`, channels-last: the layout oneDNN's and cuDNN's convolutions are
        fastest in, and the one in which the cells add their 1x1 hidden-state products in place; the recurrent
        cells in `precision` ("fp32" or "bf16", RecurrentCodec.set_precision)."""
        self.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)
        return self.set_precision(precision)

    def plane_coder(self) -> PlaneCoder:
        """A fresh entropy coder for the bit planes of one image."""
        return PlaneCoder(self.prior, self.config.bits, self.mixer)

    # ------------------------------------------------------------------ images -> bytes

    def compress(self, image, iterations: int = 8, tiles: int | str = "auto") -> bytes:
        """An image (path, bytes, PIL image or H x W (x 3|4) uint8 array) as .lstm bytes of `iterations` iterations.
        tiles: "auto" codes images over tiling.THRESHOLD pixels in overlapping tiles, "off" never, a number forces
        tiles of that side (a multiple of 16 pixels)."""
        return self.encode_source(prepare(open_image(image)), iterations, tiles).data

    def encode_source(self, src: SourceImage, iterations: int = 8, tiles: int | str = "auto",
                      on_iteration: Callable[[int], None] | None = None) -> EncodeResult:
        """compress() of a prepared image, with the notices a user should see (lossy conversions, iterations beyond
        the trained count)."""
        check_iteration_count(iterations)
        h, w = src.rgb.shape[:2]
        check_size(w, h)
        try:
            plan = tiling.plan(w, h, tiles)
        except ValueError as e:
            raise CodecError(str(e)) from None
        planes, masks = self.encode_planes(src.rgb, iterations, plan, on_iteration)
        result = self.entropy_code(src, planes, masks, iterations, plan)
        if plan is not None and on_iteration is not None:
            on_iteration(iterations)
        return result

    def encode_planes(self, rgb: np.ndarray, iterations: int, plan: tiling.Tiling | None = None,
                      on_iteration: Callable[[int], None] | None = None) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """The bit planes of an H x W x 3 uint8 image (of the tiled grid when `plan` is given) and the blocks each one
        holds (None: all). A model with a linear tail sends its stages only to the blocks they pay for (tail.Gate),
        and stops early once no block receives one: fewer planes than `iterations`. on_iteration(k) after
        iteration k (untiled images)."""
        if plan is not None:   # tiles: every block gets every iteration
            with torch.inference_mode(), memory_guard("encode this image"):
                planes = large.encode_tiles(self, rgb, iterations, plan)
            return planes, [None] * len(planes)
        return self.encode_planes_batch([rgb], iterations, on_iteration)[0]

    def encode_planes_batch(self, rgbs: list[np.ndarray], iterations: int,
                            on_iteration: Callable[[int], None] | None = None
                            ) -> list[tuple[list[np.ndarray], list[np.ndarray | None]]]:
        """encode_planes() of untiled images of one padded size, the networks running on all of them at once: each
        image's planes and masks, each ending at its own first plane that no block receives. on_iteration(k) after
        iteration k."""
        for rgb in rgbs:
            check_size(rgb.shape[1], rgb.shape[0])
        with torch.inference_mode(), memory_guard("encode this image" if len(rgbs) == 1 else "encode these images"):
            x = torch.cat([to_tensor(rgb, self.device) for rgb in rgbs]) if len(rgbs) > 1 else to_tensor(rgbs[0], self.device)
            gate = self.tail_gate(x, iterations)
            out: list[tuple[list, list]] = [([], []) for _ in rgbs]
            done = [False] * len(rgbs)
            for t, (b, _) in enumerate(self.iterate(x, iterations, gate, decode_last=False), 1):
                alive = None if gate is None or gate.alive is None else (gate.alive[:, 0] > 0).cpu().numpy()
                bits = (b > 0).to(torch.uint8).cpu().numpy()
                for i, (planes, masks) in enumerate(out):
                    done[i] = done[i] or (alive is not None and not alive[i].any())
                    if not done[i]:
                        planes.append(bits[i])
                        masks.append(None if alive is None else alive[i])
                if all(done):
                    break
                if on_iteration is not None:
                    on_iteration(t)
            return out

    def tail_gate(self, x: torch.Tensor, iterations: int) -> Gate | None:
        """The encoder's choice of the blocks that receive the linear tail's stages (tail.Gate), where an encode of
        `iterations` reaches the tail; else None."""
        return Gate(self.tail, x) if self.tail is not None and iterations > self.tail.start else None

    def entropy_code(self, src: SourceImage, planes: list[np.ndarray], masks: list[np.ndarray | None],
                      iterations: int, plan: tiling.Tiling | None = None) -> EncodeResult:
        """The file of an image's bit planes: entropy-coded, with the iteration map where blocks differ in count."""
        counts = sum(np.ones(planes[0].shape[1:], np.int64) if m is None else m.astype(np.int64) for m in masks)
        uniform = bool((counts == counts.flat[0]).all())
        if uniform:   # every block the same count: a plain file, no map to pay for
            masks = [None] * len(planes)
        coder = self.plane_coder()
        payloads = [coder.encode(p, m) for p, m in zip(planes, masks)]
        iteration_map = None if uniform else encode_map(counts, 1)   # version 2: a count per block
        return EncodeResult(framing.frame(self, src, payloads, iteration_map, plan=plan),
                            src.notices + self.beyond_training(iterations))

    def beyond_training(self, iterations: int) -> list[str]:
        """A notice when more iterations are asked for than the weights were trained to use."""
        if self.tail is None:
            trained, what = self.config.iterations, f"was trained on {self.config.iterations} iterations"
        else:
            trained = self.tail.start + self.tail.stages
            what = f"covers {trained} iterations ({self.tail.start} of its networks, {self.tail.stages} linear stages)"
        if iterations <= trained:
            return []
        return [f"{self.name} {what}; iterations {trained + 1}-{iterations} add bits for little or no quality"]

    # ------------------------------------------------------------------ bytes -> images

    def decompress(self, data: bytes | str | os.PathLike, iterations: int | None = None) -> Image.Image:
        """The image of a .lstm file (bytes or a path) from its first `iterations` iterations (all by default)."""
        d = self.read(data, iterations)
        return d.image(next(self.reconstructions(d, every=False)))

    def decompress_progressive(self, data: bytes | str | os.PathLike, iterations: int | None = None
                               ) -> Iterator[Image.Image]:
        """The image after each iteration 1..iterations; the k-th equals decompress(data, iterations=k)."""
        d = self.read(data, iterations)
        for rgb in self.reconstructions(d):
            yield d.image(rgb)

    def read(self, data: bytes | str | os.PathLike, iterations: int | None = None) -> Decoded:
        """A file made with this codec, parsed and entropy-decoded (its first `iterations` iterations; framing.read)."""
        return framing.read(self, data, iterations)

    def reconstructions(self, d: Decoded, every: bool = True) -> Iterator[np.ndarray]:
        """The H x W x 3 uint8 image after each iteration of a decoded file (every=False: after the last only): one
        decoder pass over all of them (a tiled file: one pass per prefix)."""
        h, w = d.header.height, d.header.width
        with torch.inference_mode(), memory_guard("decode this image"):
            if d.plan is not None:
                for k in range(1 if every else len(d.planes), len(d.planes) + 1):
                    yield large.decode_tiles(self, d.planes[:k], d.plan, h, w, d.tail)
                return
            if padded(h) * padded(w) > tiling.THRESHOLD:   # a large untiled file: region by region, bounded memory
                for k in range(1 if every else len(d.planes), len(d.planes) + 1):
                    yield large.decode_regions(self, d.planes[:k], d.masks[:k], h, w, d.tail)
                return
            for rgbs in self._reconstruct_stack([d], every):
                yield rgbs[0]

    def _reconstruct_stack(self, files: list[Decoded], every: bool = True) -> Iterator[list[np.ndarray]]:
        """Untiled files of one padded size, plane count and tail decoded as one batch (a block mask where any file
        has one, all ones for the others): each file's H x W x 3 uint8 image after every iteration (every=False:
        after the last only)."""
        bits, masks = [], []
        for t in range(len(files[0].planes)):
            ms = [d.masks[t] for d in files]
            mask = None
            if any(m is not None and not m.all() for m in ms):
                mask = torch.cat([mask_tensor(np.ones(files[0].planes[t].shape[1:], bool) if m is None else m,
                                              self.device) for m in ms])
            b = torch.cat([plane_to_bits(d.planes[t], self.device) for d in files]) if len(files) > 1 \
                else plane_to_bits(files[0].planes[t], self.device)
            bits.append(b if mask is None else b * mask)
            masks.append(mask)
        for x_hat in reconstruct(self, bits, masks, every, files[0].tail):
            yield [to_rgb(x_hat[i:i + 1], d.header.height, d.header.width) for i, d in enumerate(files)]

    def reconstruct_batch(self, files: list[Decoded]) -> list[np.ndarray]:
        """The last reconstruction of untiled files of one padded size, plane count and tail, decoded as one batch."""
        with torch.inference_mode(), memory_guard("decode these images"):
            return next(self._reconstruct_stack(files, every=False))
