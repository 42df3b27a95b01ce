"""The Codec: a recurrent network with its entropy model and identity, which turns images into .lstm bytes and back.

    codec = lstmcodec.load_model("default")
    data = codec.compress("photo.png", iterations=8)        # bytes of a .lstm file
    image = codec.decompress(data, iterations=2)             # PIL.Image.Image, from any prefix
    x_hats = codec(x, 16)                                    # training: x̂_t for t = 1..16 (RecurrentCodec.forward)

A Codec *is* the network (nets.recurrent.RecurrentCodec, so its state dict is the weights file's) and carries
what turns bits into bytes: the learned context table and mixer (entropy.PlaneCoder), its name and the fingerprint
that every file it writes records. Images are padded to whole 16-pixel blocks; an image over tiling.THRESHOLD pixels
is coded as overlapping tiles (tiling.py), each tile its own recurrence.
"""
from __future__ import annotations

import contextlib
import numbers
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from lstmcodec.format import container
from lstmcodec.coding import tiling
from lstmcodec.format.entropy import PlaneCoder
from lstmcodec.errors import CodecError
from lstmcodec.geometry import BLOCK, blocks, padded
from lstmcodec.io.files import read_file
from lstmcodec.io.imageio import (SourceImage, open_image, pack_alpha, pack_icc, prepare, to_pil, unpack_alpha,
                      unpack_icc)
from lstmcodec.format.itermap import decode_map, encode_map, map_masks
from lstmcodec.format.mixer import Mixer
from lstmcodec.nets.recurrent import CodecConfig, RecurrentCodec, decoder_cost
from lstmcodec.nets.tail import Gate

# ----------------------------------------------------------------------------- pixels and bits <-> tensors


def to_tensor(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H' x W' in [-0.5, 0.5], edge-padded to whole blocks, channels-last."""
    h, w = rgb.shape[:2]
    if not rgb.flags.writeable:   # np.asarray(PIL image) is read-only, and torch warns of such arrays
        rgb = rgb.copy()
    x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0 - 0.5
    ph, pw = padded(h) - h, padded(w) - w
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x.contiguous(memory_format=torch.channels_last)


def pad_rgb(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 edge-padded to whole blocks (as to_tensor pads), for cutting tiles from."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, padded(h) - h), (0, padded(w) - w), (0, 0)), mode="edge")


def to_rgb(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    """A reconstruction (1 x 3 x H' x W' in [-0.5, 0.5]) as the H x W x 3 uint8 image it decodes to."""
    x = ((x_hat[0, :, :h, :w].clamp(-0.5, 0.5) + 0.5) * 255.0).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def bits_to_plane(b: torch.Tensor) -> np.ndarray:
    """A ±1 tensor (1 x C x h x w) as a C x h x w uint8 array of 0/1 (0 where a block got no bits)."""
    return (b[0] > 0).to(torch.uint8).cpu().numpy()


def plane_to_bits(plane: np.ndarray, device: torch.device) -> torch.Tensor:
    b = torch.from_numpy(plane.astype(np.float32) * 2 - 1).unsqueeze(0).to(device)
    return b.contiguous(memory_format=torch.channels_last)


def mask_tensor(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    """An H/16 x W/16 boolean block mask as the 1 x 1 x H/16 x W/16 0/1 tensor the network takes."""
    return torch.from_numpy(mask.astype(np.float32))[None, None].to(device)


@contextlib.contextmanager
def memory_guard(what: str):
    """An allocation that fails while the networks run (MemoryError, or torch's RuntimeError for a CPU or GPU
    allocation) becomes one CodecError line."""
    try:
        yield
    except MemoryError:
        raise CodecError(f"not enough memory to {what}") from None
    except RuntimeError as e:
        if "alloc" in str(e) or "out of memory" in str(e):
            raise CodecError(f"not enough memory to {what}") from None
        raise


# ----------------------------------------------------------------------------- the codec

BATCH = 16     # images of one size the networks take at once on CUDA (compress_many, decompress_many) ...
BATCH_PIXELS = BATCH * 768 * 512   # ... and at most this many pixels (16 Kodak images, 3 of the largest untiled)


def default_batch(device: torch.device) -> int:
    """Images the networks take at once by default: BATCH on CUDA, 1 elsewhere (on the CPU one image at a time is
    faster: its large tensors are cut into bands that stay in cache)."""
    return BATCH if device.type == "cuda" else 1


REGION = 512   # side in pixels of the regions a large untiled file is decoded in (with their margins, ~0.4 MP)


@dataclass
class EncodeResult:
    data: bytes
    notices: list[str]


@dataclass
class Decoded:
    """A file read and entropy-decoded, ready for the decoder network."""
    header: container.Header
    planes: list[np.ndarray]                  # the bit planes, 0/1 (of the tiled grid for a tiled file)
    masks: list[np.ndarray | None]            # blocks each iteration holds (adaptive files), else None
    plan: tiling.Tiling | None
    alpha: np.ndarray | None
    icc: bytes | None
    tail: bool = True                         # whether the late iterations are the weights' linear tail

    def image(self, rgb: np.ndarray) -> Image.Image:
        return to_pil(rgb, self.header.mode, self.alpha, self.icc)


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
        codec.tail = weights.tail_model(path, blob, config.bits)
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

    # ------------------------------------------------------------------ images <-> bit planes

    def encode_planes(self, rgb: np.ndarray, iterations: int, plan: tiling.Tiling | None = None,
                      on_iteration: Callable[[int], None] | None = None) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """The bit planes of an H x W x 3 uint8 image (of the tiled grid when `plan` is given) and the blocks each one
        holds (None: all). A model with a linear tail sends its stages only to the blocks they pay for (tail.Gate),
        and stops early once no block receives one: fewer planes than `iterations`. on_iteration(k) after
        iteration k (untiled images)."""
        if plan is not None:   # tiles: every block gets every iteration
            with torch.inference_mode(), memory_guard("encode this image"):
                planes = self._encode_tiles(pad_rgb(rgb), iterations, plan)
            return planes, [None] * len(planes)
        return self.encode_planes_batch([rgb], iterations, on_iteration)[0]

    def _encode_tiles(self, rgb: np.ndarray, iterations: int, plan: tiling.Tiling) -> list[np.ndarray]:
        """Run the recurrence on each tile of a padded image in turn; returns each iteration's plane of the tiled grid."""
        height, width = rgb.shape[:2]
        planes = [np.zeros((self.config.bits, *plan.grid(height, width)), np.uint8) for _ in range(iterations)]
        for tile in plan.tiles(height, width):
            x = to_tensor(rgb[tile.y0:tile.y1, tile.x0:tile.x1], self.device)
            for plane, (b, _) in zip(planes, self.iterate(x, iterations, decode_last=False)):
                plane[:, tile.rows, tile.cols] = bits_to_plane(b)
        return planes

    def reconstructions(self, d: Decoded, every: bool = True) -> Iterator[np.ndarray]:
        """The H x W x 3 uint8 image after each iteration of a decoded file (every=False: after the last only): one
        decoder pass over all of them (a tiled file: one pass per prefix)."""
        h, w = d.header.height, d.header.width
        with torch.inference_mode(), memory_guard("decode this image"):
            if d.plan is not None:
                for k in range(1 if every else len(d.planes), len(d.planes) + 1):
                    yield self._decode_tiles(d.planes[:k], d.plan, h, w, d.tail)
                return
            if padded(h) * padded(w) > tiling.THRESHOLD:   # a large untiled file: region by region, bounded memory
                for k in range(1 if every else len(d.planes), len(d.planes) + 1):
                    yield self._decode_regions(d.planes[:k], d.masks[:k], h, w, d.tail)
                return
            for rgbs in self._reconstruct_stack([d], every):
                yield rgbs[0]

    def _decode_tiles(self, planes: list[np.ndarray], plan: tiling.Tiling, height: int, width: int,
                      tail: bool = True) -> np.ndarray:
        """Decode each tile from its blocks of the tiled grid and blend the tiles; returns H x W x 3 uint8."""
        ph, pw = padded(height), padded(width)
        canvas = torch.zeros(1, 3, ph, pw, device=self.device)
        for tile in plan.tiles(ph, pw):
            for x_hat in self.reconstruct((plane_to_bits(p[:, tile.rows, tile.cols], self.device) for p in planes),
                                          every=False, tail=tail):
                pass
            canvas[:, :, tile.y0:tile.y1, tile.x0:tile.x1] += x_hat * torch.from_numpy(tile.weights).to(self.device)
            del x_hat
        return to_rgb(canvas, height, width)

    def decoder_margin(self, iterations: int) -> int:
        """Pixels around an output region that the decoder's output depends on (its receptive radius, rounded up
        to whole blocks, plus one): 3x3 input kernels at 1/16, 1/8, 1/4 and 1/2 resolution reach 16 + 8 + 4 + 2 px;
        3x3 hidden kernels in the last two cells reach 4 + 2 px further with every run."""
        runs = iterations + self.config.priming
        radius = 30 + (6 * runs if self.config.decoder_hidden_kernel == 3 else 0)
        return (-(-radius // BLOCK) + 1) * BLOCK

    def _decode_regions(self, planes: list[np.ndarray], masks: list[np.ndarray | None], height: int, width: int,
                        tail: bool = True, side: int = REGION) -> np.ndarray:
        """An untiled file decoded one region of side x side pixels at a time, each from its blocks and a margin of
        decoder_margin pixels (cut off afterwards): the same pixels as one pass over the whole image, to float
        rounding, with the memory of one region. Returns H x W x 3 uint8."""
        ph, pw = padded(height), padded(width)
        m = self.decoder_margin(len(planes))
        out = np.empty((height, width, 3), np.uint8)
        for y0 in range(0, ph, side):
            for x0 in range(0, pw, side):
                y1, x1 = min(y0 + side, ph), min(x0 + side, pw)
                ya, xa, yb, xb = max(0, y0 - m), max(0, x0 - m), min(ph, y1 + m), min(pw, x1 + m)
                rows, cols = slice(ya // BLOCK, yb // BLOCK), slice(xa // BLOCK, xb // BLOCK)
                region_masks = [None if k is None or k[rows, cols].all() else mask_tensor(k[rows, cols], self.device)
                                for k in masks]
                bits = (plane_to_bits(p[:, rows, cols], self.device) * (1 if k is None else k)
                        for p, k in zip(planes, region_masks))
                for x_hat in self.reconstruct(bits, region_masks, every=False, tail=tail):
                    pass
                rgb = to_rgb(x_hat[..., y0 - ya:y1 - ya, x0 - xa:x1 - xa], y1 - y0, x1 - x0)
                out[y0:min(y1, height), x0:min(x1, width)] = rgb[:min(y1, height) - y0, :min(x1, width) - x0]
        return out

    # ------------------------------------------------------------------ images <-> bytes

    def compress(self, image, iterations: int = 8, tiles: int | str = "auto") -> bytes:
        """An image (path, bytes, PIL image or H x W (x 3|4) uint8 array) as .lstm bytes of `iterations` iterations.
        tiles: "auto" codes images over tiling.THRESHOLD pixels in overlapping tiles, "off" never, a number forces
        tiles of that side (a multiple of 16 pixels)."""
        return self.encode_source(prepare(open_image(image)), iterations, tiles).data

    def encode_source(self, src: SourceImage, iterations: int = 8, tiles: int | str = "auto",
                      on_iteration: Callable[[int], None] | None = None) -> EncodeResult:
        """compress() of a prepared image, with the notices a user should see (lossy conversions, iterations beyond
        the trained count)."""
        if not 1 <= check_iterations(iterations) <= container.MAX_ITERATIONS:
            raise CodecError(f"iterations must be between 1 and {container.MAX_ITERATIONS}")
        h, w = src.rgb.shape[:2]
        check_size(w, h)
        try:
            plan = tiling.plan(w, h, tiles)
        except ValueError as e:
            raise CodecError(str(e)) from None
        planes, masks = self.encode_planes(src.rgb, iterations, plan, on_iteration)
        result = self._entropy_code(src, planes, masks, iterations, plan)
        if plan is not None and on_iteration is not None:
            on_iteration(iterations)
        return result

    def _entropy_code(self, src: SourceImage, planes: list[np.ndarray], masks: list[np.ndarray | None],
                      iterations: int, plan: tiling.Tiling | None = None) -> EncodeResult:
        """The file of an image's bit planes: entropy-coded, with the iteration map where blocks differ in count."""
        counts = sum(np.ones(planes[0].shape[1:], np.int64) if m is None else m.astype(np.int64) for m in masks)
        uniform = bool((counts == counts.flat[0]).all())
        if uniform:   # every block the same count: a plain file, no map to pay for
            masks = [None] * len(planes)
        coder = self.plane_coder()
        payloads = [coder.encode(p, m) for p, m in zip(planes, masks)]
        iteration_map = None if uniform else encode_map(counts, 1)   # version 2: a count per block
        return EncodeResult(self.frame(src, payloads, iteration_map, plan=plan),
                            src.notices + self.beyond_training(iterations))

    def compress_many(self, images, iterations: int = 8, batch: int | None = None) -> list[bytes]:
        """compress() of several images (each a path, bytes, PIL image or array), the networks running on up to
        `batch` images of the same padded size at once (default: BATCH on CUDA, 1 on the CPU, where one image at a
        time is faster: its large tensors are cut into bands that stay in cache). Each file decodes alone; on the CPU
        it is byte for byte the file compress() writes (on CUDA, whose convolution algorithms may depend on the batch,
        a bit near zero may come out the other way)."""
        return [r.data for r in self.encode_sources([prepare(open_image(i)) for i in images], iterations, batch)]

    def encode_sources(self, sources: list[SourceImage], iterations: int = 8, batch: int | None = None
                       ) -> list[EncodeResult]:
        """compress_many() of prepared images, with each one's notices. Images large enough to be tiled are coded
        one at a time (encode_source)."""
        if not 1 <= check_iterations(iterations) <= container.MAX_ITERATIONS:
            raise CodecError(f"iterations must be between 1 and {container.MAX_ITERATIONS}")
        batch = self._batch(batch)
        results: list[EncodeResult | None] = [None] * len(sources)
        for group in self._groups(sources, batch, lambda s: s.rgb.shape[:2]):
            if len(group) == 1:
                results[group[0]] = self.encode_source(sources[group[0]], iterations)
                continue
            coded = self.encode_planes_batch([sources[i].rgb for i in group], iterations)
            for i, (planes, masks) in zip(group, coded):
                results[i] = self._entropy_code(sources[i], planes, masks, iterations)
        return results

    def default_batch(self) -> int:
        return default_batch(self.device)

    def _batch(self, batch: int | None) -> int:
        """The batch size a *_many call asked for, or this device's default; refuses one under 1."""
        batch = self.default_batch() if batch is None else batch
        if batch < 1:
            raise CodecError("batch must be at least 1")
        return batch

    @staticmethod
    def _groups(items: list, batch: int, size: Callable) -> Iterator[list[int]]:
        """Indices of `items` in groups of at most `batch` (and BATCH_PIXELS pixels) that share a padded size and are
        not tiled (each tiled one, or one over the pixel cap, alone; its own call reports what is wrong with it)."""
        by_size: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            h, w = size(item)
            key = (padded(h), padded(w))
            if batch == 1 or key[0] * key[1] > tiling.THRESHOLD:
                yield [i]
            else:
                by_size.setdefault(key, []).append(i)
        for (h, w), members in by_size.items():
            n = max(1, min(batch, BATCH_PIXELS // (h * w)))
            for k in range(0, len(members), n):
                yield members[k:k + n]

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
            gate = Gate(self.tail, x) if self.tail is not None and iterations > self.tail.start else None
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

    def frame(self, src: SourceImage, payloads: list[bytes], iteration_map: bytes | None = None,
              plan: tiling.Tiling | None = None) -> bytes:
        """The .lstm bytes of an image's coded iterations: header, alpha and ICC chunks, the map, the iterations."""
        h, w = src.rgb.shape[:2]
        header = container.Header(w, h, src.mode, len(payloads), self.name, self.fingerprint,
                                  None if plan is None else (plan.extent, plan.overlap))
        alpha = pack_alpha(src.alpha) if src.alpha is not None else None
        icc = pack_icc(src.icc) if src.icc else None
        return container.write(header, payloads, alpha, icc, iteration_map)

    def read(self, data: bytes | str | os.PathLike, iterations: int | None = None) -> Decoded:
        """Parse a file made with this codec and entropy-decode its first `iterations` iterations (all by default).
        Every chunk is decoded before any pixel: a corrupt chunk fails before there is output."""
        raw = read_file(data) if isinstance(data, (str, os.PathLike)) else bytes(data)
        f = container.read(raw)
        hd = f.header
        tail = self.check_file(hd)
        n = len(f.iterations) if iterations is None else check_iterations(iterations)
        if n < 1:
            raise CodecError("iterations must be at least 1")
        if n > len(f.iterations):
            raise CodecError(f"the file holds {len(f.iterations)} iterations, {n} requested")
        grid = blocks(hd.height, hd.width)
        plan = None if hd.tiles is None else tiling.Tiling(*hd.tiles)
        shape = (self.config.bits, *(grid if plan is None else plan.grid(padded(hd.height), padded(hd.width))))
        container.check_work(shape[1] * shape[2] * BLOCK * BLOCK, n, len(raw), decoder_cost(self.config),
                             0 if plan is None else len(plan.tiles(padded(hd.height), padded(hd.width))))
        masks: list[np.ndarray | None] = [None] * n
        if f.iteration_map is not None:
            counts, tile = decode_map(f.iteration_map, grid)
            masks = map_masks(counts, tile, grid, n)
        coder = self.plane_coder()
        planes = []
        for payload, mask in zip(f.iterations[:n], masks):
            coded = shape[0] * (shape[1] * shape[2] if mask is None else int(mask.sum()))
            if len(payload) > 1 + (coded + 7) // 8:
                raise CodecError("iteration chunk is larger than its image allows")
            planes.append(coder.decode(payload, shape, mask))
        alpha = unpack_alpha(f.alpha, hd.width, hd.height) if f.alpha is not None else None
        icc = unpack_icc(f.icc) if f.icc is not None else None
        return Decoded(hd, planes, masks, plan, alpha, icc, tail)

    def check_file(self, header: container.Header) -> bool:
        """Refuses a file whose header records other weights than these; returns whether it was written with their
        linear tail (False: the file records the weights without it, and decodes with the networks alone)."""
        if header.fingerprint == self.fingerprint:
            return True
        if header.fingerprint != self.network_fingerprint:
            raise CodecError(f"model mismatch: the file was made with '{header.model}' ({header.fingerprint.hex()}), "
                             f"not with these weights '{self.name}' ({self.fingerprint.hex()})")
        return False

    def decompress(self, data: bytes | str | os.PathLike, iterations: int | None = None) -> Image.Image:
        """The image of a .lstm file (bytes or a path) from its first `iterations` iterations (all by default)."""
        d = self.read(data, iterations)
        return d.image(next(self.reconstructions(d, every=False)))

    def decompress_many(self, files: list, iterations: int | None = None, batch: int | None = None
                        ) -> list[Image.Image]:
        """decompress() of several files (bytes or paths), the decoder running on up to `batch` images at once where
        files share their padded size and iteration count (default: BATCH on CUDA, 1 on the CPU). Every file is read
        and entropy-decoded before any pixel; each image is the one decompress() gives, to float rounding."""
        decoded = [self.read(f, iterations) for f in files]
        batch = self._batch(batch)
        images: list[Image.Image | None] = [None] * len(decoded)
        keyed = [(len(d.planes), d.tail) if d.plan is None else None for d in decoded]
        for group in self._groups(list(range(len(decoded))), batch,
                                  lambda i: (decoded[i].header.height, decoded[i].header.width)):
            # within a size group, only files with the same count of planes and tail run together
            for sub in self._split(group, keyed):
                if len(sub) == 1:
                    d = decoded[sub[0]]
                    images[sub[0]] = d.image(next(self.reconstructions(d, every=False)))
                else:
                    for i, rgb in zip(sub, self.reconstruct_batch([decoded[i] for i in sub])):
                        images[i] = decoded[i].image(rgb)
        return images

    @staticmethod
    def _split(group: list[int], keys: list) -> Iterator[list[int]]:
        """A size group's files by key (plane count and tail); a file without a key (tiled) alone."""
        by_key: dict = {}
        for i in group:
            if keys[i] is None:
                yield [i]
            else:
                by_key.setdefault(keys[i], []).append(i)
        yield from by_key.values()

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
        for x_hat in self.reconstruct(bits, masks, every, files[0].tail):
            yield [to_rgb(x_hat[i:i + 1], d.header.height, d.header.width) for i, d in enumerate(files)]

    def reconstruct_batch(self, files: list[Decoded]) -> list[np.ndarray]:
        """The last reconstruction of untiled files of one padded size, plane count and tail, decoded as one batch."""
        with torch.inference_mode(), memory_guard("decode these images"):
            return next(self._reconstruct_stack(files, every=False))

    def decompress_progressive(self, data: bytes | str | os.PathLike, iterations: int | None = None
                               ) -> Iterator[Image.Image]:
        """The image after each iteration 1..iterations; the k-th equals decompress(data, iterations=k)."""
        d = self.read(data, iterations)
        for rgb in self.reconstructions(d):
            yield d.image(rgb)


def check_iterations(n) -> int:
    """An iteration count as an int (numpy's integers too); CodecError for a float, a bool or text."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise CodecError(f"iterations must be a whole number, not {n!r}")
    return int(n)


def check_size(width: int, height: int) -> None:
    """Refuses an image over the pixel cap (container.MAX_PIXELS, counted after padding to whole blocks)."""
    if padded(width) * padded(height) > container.MAX_PIXELS:
        raise CodecError(f"image size {width}x{height} exceeds the limit of {container.MAX_PIXELS} pixels "
                         f"(counted after padding to {BLOCK}-pixel blocks)")
