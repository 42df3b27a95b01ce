"""Image <-> .lstm bytes: pad, run the recurrence, entropy-code the bit planes, frame them.

    encode(image, iterations=8) -> bytes
    decode(data, iterations=None) -> PIL.Image.Image
"""
from __future__ import annotations

import functools
import io
import math
import os
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from . import container, entropy, tiling
from .errors import CodecError
from .imageio import SourceImage, open_image, prepare, to_pil
from .nets.recurrent import BLOCK
from .runtime import select_device
from .weights import DEFAULT_CODEC, LoadedCodec, load_codec, registry


@functools.lru_cache(maxsize=4)
def get_model(model: str = DEFAULT_CODEC, device: str = "cpu") -> LoadedCodec:
    """Load (once per process) a codec by bundled name or weights path."""
    try:
        return load_codec(model, select_device(device))
    except (ValueError, FileNotFoundError) as e:
        raise CodecError(str(e)) from None


def _resolve_device(device: str) -> str:
    try:
        return str(select_device(device))
    except ValueError as e:
        raise CodecError(str(e)) from None


# ----------------------------------------------------------------------------- pixels <-> tensors


def _to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H' x W' in [-0.5, 0.5], edge-padded to multiples of 16, channels-last."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0 - 0.5
    ph, pw = -h % BLOCK, -w % BLOCK
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x.contiguous(memory_format=torch.channels_last)


def _pad_rgb(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 edge-padded to multiples of 16 (as _to_tensor pads), for cutting tiles from."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, -h % BLOCK), (0, -w % BLOCK), (0, 0)), mode="edge")


def _to_rgb(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    x = ((x_hat[0, :, :h, :w].clamp(-0.5, 0.5) + 0.5) * 255.0).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def _bits_to_plane(b: torch.Tensor) -> np.ndarray:
    """A ±1 tensor (1 x C x h x w) as a C x h x w uint8 array of 0/1."""
    return (b[0] > 0).to(torch.uint8).cpu().numpy()


def _plane_to_bits(plane: np.ndarray, device: torch.device) -> torch.Tensor:
    b = torch.from_numpy(plane.astype(np.float32) * 2 - 1).unsqueeze(0).to(device)
    return b.contiguous(memory_format=torch.channels_last)


def _mask_tensor(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    """An H/16 x W/16 boolean block mask as the 1 x 1 x H/16 x W/16 0/1 tensor the model takes."""
    return torch.from_numpy(mask.astype(np.float32))[None, None].to(device)


# ----------------------------------------------------------------------------- alpha and ICC chunks


def _pack_alpha(alpha: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _unpack_alpha(payload: bytes, w: int, h: int) -> np.ndarray:
    if not payload.startswith(b"\x89PNG\r\n\x1a\n"):
        raise CodecError("corrupt alpha chunk")
    try:
        with Image.open(io.BytesIO(payload)) as im:
            if im.size != (w, h) or im.mode != "L":
                raise CodecError("alpha chunk does not match the image size")
            im.load()
            return np.asarray(im).copy()
    except CodecError:
        raise
    except Exception:
        raise CodecError("corrupt alpha chunk") from None


def _unpack_icc(payload: bytes) -> bytes:
    try:
        d = zlib.decompressobj()
        icc = d.decompress(payload, 1 << 24)
        if d.unconsumed_tail:
            raise CodecError("ICC profile chunk is larger than 16 MiB")
        return icc
    except zlib.error:
        raise CodecError("corrupt ICC profile chunk") from None


# ----------------------------------------------------------------------------- the API


@dataclass
class EncodeResult:
    data: bytes
    notices: list[str]


def encode_image(src: SourceImage, iterations: int = 8, model: str = DEFAULT_CODEC, device: str = "cpu",
                 on_iteration: Callable[[int], None] | None = None, tiles: int | str = "auto") -> EncodeResult:
    """Encode a prepared image; `on_iteration(k)` is called after iteration k (the bench times it).
    tiles: "auto" codes images over tiling.THRESHOLD pixels in overlapping tiles (bounded memory),
    "off" never tiles, a number forces tiles of that side (a multiple of 16 pixels)."""
    if not 1 <= iterations <= container.MAX_ITERATIONS:
        raise CodecError(f"iterations must be between 1 and {container.MAX_ITERATIONS}")
    h, w = src.rgb.shape[:2]
    codec, dev = _encoder_model(w, h, model, device)
    try:
        plan = tiling.plan(w, h, tiles)
    except ValueError as e:
        raise CodecError(str(e)) from None
    coder = codec.plane_coder()
    with torch.inference_mode():
        if plan is None:
            payloads = []
            for b, _ in codec.model.iterate(_to_tensor(src.rgb, dev), iterations, final_reconstruction=False):
                payloads.append(coder.encode(_bits_to_plane(b)))
                if on_iteration is not None:
                    on_iteration(len(payloads))
        else:
            planes = _encode_tiles(codec, _pad_rgb(src.rgb), iterations, plan, dev)
            payloads = [coder.encode(p) for p in planes]
            if on_iteration is not None:
                on_iteration(iterations)
    return EncodeResult(_write_file(src, codec, payloads, tiles=plan), src.notices + _beyond_training(codec, iterations))


def _beyond_training(codec: LoadedCodec, iterations: int) -> list[str]:
    """A notice when more iterations are asked for than the weights were trained to use."""
    trained = codec.model.config.iterations
    if iterations <= trained:
        return []
    return [f"{codec.name} was trained on {trained} iterations; iterations {trained + 1}-{iterations} add bits "
            f"for little or no quality"]


def _encode_tiles(codec: LoadedCodec, rgb: np.ndarray, iterations: int, plan: tiling.Tiling,
                  dev: torch.device) -> list[np.ndarray]:
    """Run the recurrence on each tile of a padded image in turn; returns each iteration's plane of the tiled grid."""
    height, width = rgb.shape[:2]
    planes = [np.zeros((codec.model.config.bits, *plan.grid(height, width)), np.uint8) for _ in range(iterations)]
    for tile in plan.tiles(height, width):
        x = _to_tensor(rgb[tile.y0:tile.y1, tile.x0:tile.x1], dev)
        for plane, (b, _) in zip(planes, codec.model.iterate(x, iterations, final_reconstruction=False)):
            plane[:, tile.rows, tile.cols] = _bits_to_plane(b)
    return planes


def _decode_tiles(codec: LoadedCodec, planes: list[np.ndarray], plan: tiling.Tiling, height: int, width: int,
                  dev: torch.device) -> np.ndarray:
    """Decode each tile from its blocks of the tiled grid and blend the tiles; returns H x W x 3 uint8."""
    ph, pw = -(-height // BLOCK) * BLOCK, -(-width // BLOCK) * BLOCK
    canvas = torch.zeros(1, 3, ph, pw, device=dev)
    for tile in plan.tiles(ph, pw):
        bits = (_plane_to_bits(p[:, tile.rows, tile.cols], dev) for p in planes)
        for x_hat in codec.model.reconstruct(bits):
            pass
        canvas[:, :, tile.y0:tile.y1, tile.x0:tile.x1] += x_hat * torch.from_numpy(tile.weights).to(dev)
        del x_hat
    return _to_rgb(canvas, height, width)


def _encoder_model(w: int, h: int, model: str, device: str) -> tuple[LoadedCodec, torch.device]:
    """The codec for an image of w x h pixels (refused over the pixel cap) and the device it runs on."""
    if container.padded_pixels(w, h) > container.MAX_PIXELS:
        raise CodecError(f"image size {w}x{h} exceeds the limit of {container.MAX_PIXELS} pixels "
                         "(counted after padding to 16-pixel blocks)")
    codec = get_model(model, _resolve_device(device))
    return codec, next(codec.model.parameters()).device


def _write_file(src: SourceImage, codec: LoadedCodec, payloads: list[bytes], iteration_map: bytes | None = None,
                tiles: tiling.Tiling | None = None) -> bytes:
    h, w = src.rgb.shape[:2]
    header = container.Header(w, h, src.mode, len(payloads), codec.name, codec.fingerprint,
                              None if tiles is None else (tiles.extent, tiles.overlap))
    alpha = _pack_alpha(src.alpha) if src.alpha is not None else None
    icc = zlib.compress(src.icc, 9) if src.icc else None
    return container.write(header, payloads, alpha, icc, iteration_map)


@dataclass
class RateTarget:
    """What `encode_to_target` aims for: exactly one of bpp, size (bytes) or quality (MS-SSIM)."""
    bpp: float | None = None
    size: int | None = None
    quality: float | None = None


def encode_to_target(src: SourceImage, target: RateTarget, max_iterations: int = 16, model: str = DEFAULT_CODEC,
                     device: str = "cpu", tiles: int | str = "auto") -> tuple[EncodeResult, int]:
    """Rate control by prefix: encode once with `max_iterations`, keep the best prefix.

    bpp / size: the most iterations whose whole file fits. quality: the fewest iterations whose
    reconstruction reaches that MS-SSIM (RGB) against the input (all of them if none does).
    Returns the result and the iterations kept."""
    from .metrics import ms_ssim

    full = encode_image(src, max_iterations, model, device, tiles=tiles)
    notices = list(src.notices)  # not full.notices: what they say about the iterations tried is said below for those kept
    h, w = src.rgb.shape[:2]
    if target.quality is not None:
        keep = max_iterations
        for k, image in enumerate(decode_progressive(full.data, model=model, device=device), start=1):
            if ms_ssim(np.asarray(image.convert("RGB")), src.rgb) >= target.quality:
                keep = k
                break
        else:
            notices.append(f"MS-SSIM {target.quality} not reached in {max_iterations} iterations; kept them all")
    else:
        budget = target.size if target.size is not None else target.bpp * w * h / 8
        fi = info(full.data)
        sizes = (fi.file_bytes - sum(fi.iteration_bytes) + np.cumsum(fi.iteration_bytes)).tolist()  # each prefix file
        fitting = [k for k, n in enumerate(sizes, start=1) if n <= budget]
        if not fitting:
            raise CodecError(f"even 1 iteration needs {sizes[0]} bytes ({8 * sizes[0] / (w * h):.4f} bpp), over the budget")
        keep = fitting[-1]
    notices += _beyond_training(get_model(model, _resolve_device(device)), keep)
    return EncodeResult(container.truncate(full.data, keep), notices), keep


# ----------------------------------------------------------------------------- spatially adaptive bit rates

TILE = 32   # default tile side in pixels for adaptive bit rates


def tile_quality(x: torch.Tensor, x_hat: torch.Tensor, tile_blocks: int) -> np.ndarray:
    """Mean local MS-SSIM (metrics.local_ms_ssim) of every tile of tile_blocks x tile_blocks 16-px blocks."""
    from .metrics import local_ms_ssim

    q = local_ms_ssim(x + 0.5, (x_hat.clamp(-0.5, 0.5) + 0.5))[:, None]
    side = tile_blocks * BLOCK
    q = F.pad(q, (0, -q.shape[-1] % side, 0, -q.shape[-2] % side), mode="replicate")
    return F.avg_pool2d(q, side)[0, 0].cpu().numpy()


@dataclass
class AdaptivePass:
    planes: list[np.ndarray]       # the bit planes, 0 at stopped blocks
    masks: list[np.ndarray]        # the blocks each iteration holds
    counts: np.ndarray             # iterations each tile received
    rgb: np.ndarray                # the reconstruction


def adaptive_pass(codec: LoadedCodec, x: torch.Tensor, h: int, w: int, target: float, max_iterations: int,
                  tile_blocks: int, min_gain: float = -math.inf,
                  until: Callable[[np.ndarray], bool] | None = None) -> AdaptivePass:
    """Run the recurrence, stopping each tile once its local MS-SSIM reaches `target`, or once an
    iteration raised it by less than `min_gain` (a tile the model cannot improve stops costing bits);
    with target inf and no min_gain every tile runs (no quality map is computed). `until(rgb)`, if
    given, ends the pass early once the whole reconstruction satisfies it."""
    blocks = (x.shape[2] // BLOCK, x.shape[3] // BLOCK)
    active = np.ones((-(-blocks[0] // tile_blocks), -(-blocks[1] // tile_blocks)), dtype=bool)
    counts = np.zeros(active.shape, dtype=np.int64)
    quality = np.zeros(active.shape)
    dev = x.device
    out = AdaptivePass([], [], counts, np.zeros(0))

    def block_mask() -> np.ndarray:
        return np.repeat(np.repeat(active, tile_blocks, 0), tile_blocks, 1)[:blocks[0], :blocks[1]]

    def gate(t: int, _x_hat: torch.Tensor) -> torch.Tensor | None:
        return _mask_tensor(block_mask(), dev) if t else None

    for b, x_hat in codec.model.iterate(x, max_iterations, gate):
        counts += active
        out.planes.append(_bits_to_plane(b))
        out.masks.append(block_mask())
        out.rgb = _to_rgb(x_hat, h, w)
        if until is not None and until(out.rgb):
            break
        if target < math.inf or min_gain > -math.inf:
            now = tile_quality(x, x_hat, tile_blocks)
            active &= (now < target) & (now - quality >= min_gain)
            quality = now
        if not active.any():
            break
    return out


def encode_adaptive(src: SourceImage, quality: float, max_iterations: int = 16, tile: int = TILE,
                    model: str = DEFAULT_CODEC, device: str = "cpu", tries: int = 4) -> tuple[EncodeResult, AdaptivePass]:
    """Spatially adaptive bit rates. Every tile stops receiving iterations once its local MS-SSIM
    reaches the tile target 1 - (1 - quality) / 2 (tiles stopped right at `quality` would leave the
    image just below it), or once an iteration raised it by less than a minimum gain g (a tile the
    model improves slowly costs bits for little). g is searched (bisection on log g in [1e-4, 0.1],
    `tries` encoder passes) for the smallest file whose whole-image MS-SSIM reaches `quality`.
    Uniform iterations are a special case of a map (every tile the same count) and a candidate too:
    the fewest that reach `quality`, so an adaptive file is never larger than a uniform one. If nothing
    reaches `quality`, every tile gets every iteration. The file stores the iteration map (format
    version 2), or is a plain file when uniform iterations won."""
    from .metrics import ms_ssim

    if not 1 <= max_iterations <= container.MAX_ITERATIONS:
        raise CodecError(f"iterations must be between 1 and {container.MAX_ITERATIONS}")
    if tile % BLOCK or tile // BLOCK not in entropy.MAP_TILES:
        raise CodecError(f"tile must be one of {', '.join(str(BLOCK * t) for t in entropy.MAP_TILES)} pixels")
    h, w = src.rgb.shape[:2]
    codec, dev = _encoder_model(w, h, model, device)
    if tiling.plan(w, h) is not None:
        raise CodecError(f"--adaptive works on images of up to {tiling.THRESHOLD} pixels; "
                         f"{w}x{h} is coded in tiles (encode it without --adaptive)")
    notices = list(src.notices)
    tb = tile // BLOCK
    with torch.inference_mode():
        x = _to_tensor(src.rgb, dev)
        uniform = adaptive_pass(codec, x, h, w, math.inf, max_iterations, tb, until=lambda rgb: ms_ssim(rgb, src.rgb) >= quality)
        candidates = [uniform] if ms_ssim(uniform.rgb, src.rgb) >= quality else []
        lo, hi, log_gain = math.log(1e-4), math.log(0.1), math.log(0.01)
        for _ in range(tries if candidates else 0):
            run = adaptive_pass(codec, x, h, w, 1 - (1 - quality) / 2, max_iterations, tb, math.exp(log_gain))
            if ms_ssim(run.rgb, src.rgb) >= quality:   # reached: try stopping tiles earlier
                candidates.append(run)
                lo = log_gain
            else:
                hi = log_gain
            log_gain = (lo + hi) / 2
    if not candidates:
        notices.append(f"MS-SSIM {quality} not reached in {max_iterations} iterations; kept them all")
        candidates = [uniform]
    files = [adaptive_file(src, codec, run, tb) for run in candidates]
    best = min(range(len(files)), key=lambda i: len(files[i]))
    return EncodeResult(files[best], notices), candidates[best]


def adaptive_file(src: SourceImage, codec: LoadedCodec, run: AdaptivePass, tile_blocks: int) -> bytes:
    """The .lstm file (version 2) of an adaptive pass: its iteration map, then only the live blocks' bits.
    A map where every tile has the same count is a plain file (version 1): no map bytes to pay for."""
    coder = codec.plane_coder()
    if (run.counts == run.counts.flat[0]).all():
        return _write_file(src, codec, [coder.encode(p) for p in run.planes])
    payloads = [coder.encode(p, m) for p, m in zip(run.planes, run.masks)]
    return _write_file(src, codec, payloads, entropy.encode_map(run.counts, tile_blocks))


def encode(image, iterations: int = 8, model: str = DEFAULT_CODEC, device: str = "cpu", tiles: int | str = "auto") -> bytes:
    """Compress an image (path, PIL image, bytes or H x W x 3 uint8 array) to .lstm bytes.
    tiles: "auto" (images over 2^21 pixels in overlapping 1024-px tiles), "off", or a tile side in pixels."""
    return encode_image(prepare(open_image(image)), iterations, model, device, tiles=tiles).data


def decode(data: bytes, iterations: int | None = None, model: str | None = None, device: str = "cpu") -> Image.Image:
    """Decode .lstm bytes (or a path) to a PIL image, using the first `iterations` iterations (all by default).

    `model` overrides the bundled model named in the header (a path to a weights file); either way
    the weights' fingerprint must match the header's, or the file is refused.
    """
    d = _read_planes(data, iterations, model, device)
    if d.plan is not None:
        with torch.inference_mode():
            return d.image(_decode_tiles(d.codec, d.planes, d.plan, d.header.height, d.header.width, d.device))
    for image in _progressive(d):
        pass
    return image


def decode_progressive(data: bytes, iterations: int | None = None, model: str | None = None,
                       device: str = "cpu") -> Iterator[Image.Image]:
    """Yield the decoded image after each iteration 1..iterations: one decoder pass for every prefix
    (for a tiled file, one pass per prefix). The k-th image equals decode(data, iterations=k)."""
    d = _read_planes(data, iterations, model, device)
    if d.plan is None:
        yield from _progressive(d)
        return
    for k in range(1, len(d.planes) + 1):
        with torch.inference_mode():
            yield d.image(_decode_tiles(d.codec, d.planes[:k], d.plan, d.header.height, d.header.width, d.device))


@dataclass
class _Decoded:
    """A file read and entropy-decoded, ready for the decoder network."""
    header: container.Header
    codec: LoadedCodec
    device: torch.device
    planes: list[np.ndarray]                  # the bit planes, 0/1 (of the tiled grid for a tiled file)
    masks: list[np.ndarray | None]            # blocks each iteration holds (adaptive files), else None
    plan: tiling.Tiling | None
    alpha: np.ndarray | None
    icc: bytes | None

    def image(self, rgb: np.ndarray) -> Image.Image:
        return to_pil(rgb, self.header.mode, self.alpha, self.icc)


def _read_planes(data: bytes, iterations: int | None, model: str | None, device: str) -> _Decoded:
    if isinstance(data, (str, os.PathLike)):
        data = read_file(data)
    f = container.read(bytes(data))
    hd = f.header
    n = len(f.iterations) if iterations is None else iterations
    if n < 1:
        raise CodecError("iterations must be at least 1")
    if n > len(f.iterations):
        raise CodecError(f"the file holds {len(f.iterations)} iterations, {n} requested")
    codec = _model_for(hd, model, _resolve_device(device))
    dev = next(codec.model.parameters()).device
    blocks = (-(-hd.height // BLOCK), -(-hd.width // BLOCK))
    plan = None if hd.tiles is None else tiling.Tiling(*hd.tiles)
    shape = (codec.model.config.bits, *(blocks if plan is None else plan.grid(blocks[0] * BLOCK, blocks[1] * BLOCK)))
    masks: list[np.ndarray | None] = [None] * n
    if f.iteration_map is not None:
        counts, tile = entropy.decode_map(f.iteration_map, blocks)
        masks = entropy.map_masks(counts, tile, blocks, n)
    planes = []
    coder = codec.plane_coder()
    for payload, mask in zip(f.iterations[:n], masks):  # all entropy decoding first: a corrupt chunk fails before any output
        coded = shape[0] * (shape[1] * shape[2] if mask is None else int(mask.sum()))
        if len(payload) > 1 + (coded + 7) // 8:
            raise CodecError("iteration chunk is larger than its image allows")
        planes.append(coder.decode(payload, shape, mask))
    alpha = _unpack_alpha(f.alpha, hd.width, hd.height) if f.alpha is not None else None
    icc = _unpack_icc(f.icc) if f.icc is not None else None
    return _Decoded(hd, codec, dev, planes, masks, plan, alpha, icc)


def _progressive(d: _Decoded) -> Iterator[Image.Image]:
    """The whole image after each iteration, from one decoder pass (untiled files)."""
    with torch.inference_mode():
        block_masks = [None if m is None else _mask_tensor(m, d.device) for m in d.masks]
        bits = (_plane_to_bits(p, d.device) * (1 if m is None else m) for p, m in zip(d.planes, block_masks))
        for x_hat in d.codec.model.reconstruct(bits, block_masks):
            yield d.image(_to_rgb(x_hat, d.header.height, d.header.width))


def _model_for(hd: container.Header, model: str | None, device: str) -> LoadedCodec:
    if model is None:
        if hd.model not in registry().get("codec", {}):
            raise CodecError(f"the file was made with model '{hd.model}', which is not bundled; pass its weights with --model PATH")
        model = hd.model
    codec = get_model(model, device)
    if codec.entropy_mixer is not None and codec.base_fingerprint == hd.fingerprint:
        return codec.without_mixer()   # a file coded before these weights had their mixer
    if codec.fingerprint != hd.fingerprint:
        raise CodecError(f"model mismatch: the file was made with '{hd.model}' ({hd.fingerprint.hex()}), "
                         f"not with these weights '{codec.name}' ({codec.fingerprint.hex()})")
    return codec


def read_file(path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise CodecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{path}: is a directory") from None
    except OSError as e:
        raise CodecError(f"{path}: cannot read ({e.strerror})") from None


@dataclass
class FileInfo:
    width: int
    height: int
    mode: str
    iterations: int               # iteration chunks present
    declared_iterations: int      # iteration chunks the encoder wrote
    model: str
    fingerprint: str
    file_bytes: int
    header_bytes: int
    iteration_bytes: list[int]    # each iteration chunk, framing included
    bpp: float                    # whole file
    bpp_per_iteration: list[float]  # cumulative: file truncated after k iterations
    tile: int | None = None                        # adaptive files: tile side in pixels
    tile_iterations: list[list[int]] | None = None  # adaptive files: the iteration map, one row per tile row
    tiles: dict | None = None                       # tiled files: {"side", "overlap", "rows", "columns"} of the tiles

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


def info(data: bytes) -> FileInfo:
    f = container.read(bytes(data))
    hd, px = f.header, f.header.width * f.header.height
    meta = len(data) - sum(f.chunk_sizes)
    cumulative = np.cumsum(f.chunk_sizes) + meta
    fi = FileInfo(hd.width, hd.height, hd.mode, len(f.iterations), hd.iterations, hd.model, hd.fingerprint.hex(),
                  len(data), f.header_size, list(f.chunk_sizes), 8 * len(data) / px,
                  [float(8 * c / px) for c in cumulative])
    if f.iteration_map is not None:
        counts, tile = entropy.decode_map(f.iteration_map, (-(-hd.height // BLOCK), -(-hd.width // BLOCK)))
        fi.tile, fi.tile_iterations = tile * BLOCK, counts.tolist()
    if hd.tiles is not None:
        plan = tiling.Tiling(*hd.tiles)
        ph, pw = -(-hd.height // BLOCK) * BLOCK, -(-hd.width // BLOCK) * BLOCK
        fi.tiles = {"side": plan.extent, "overlap": plan.overlap, "rows": len(plan.spans(ph)), "columns": len(plan.spans(pw))}
    return fi


def map_image(fi: FileInfo) -> Image.Image:
    """The iteration map of an adaptive file (its info()) drawn at the image's size: black = 1
    iteration, white = the most any tile received."""
    if fi.tile_iterations is None:
        raise CodecError("not an adaptive file; it has no iteration map")
    counts = np.asarray(fi.tile_iterations, dtype=np.float64)
    span = max(1.0, counts.max() - 1)
    levels = np.round((counts - 1) / span * 255).astype(np.uint8)
    big = np.repeat(np.repeat(levels, fi.tile, 0), fi.tile, 1)[:fi.height, :fi.width]
    return Image.fromarray(big, "L")
