"""Rate–distortion and speed evaluation of lstmcodec against Pillow's classical codecs.

lstmcodec: each image is encoded once at the highest iteration count and every prefix is decoded
in one progressive pass (identical to `decode -i k`); bpp comes from the real file bytes of each
prefix, header included. Classical codecs run over quality grids spanning the same bpp range.
Results use CompressAI's JSON layout, so they plot beside published curves.
"""
from __future__ import annotations

import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from lstmcodec import metrics
from lstmcodec.models import zoo
from lstmcodec.format.fileinfo import info
from lstmcodec.io.imageio import open_image, prepare

# name -> (Pillow format, quality grid, save options for a quality)
CLASSIC: dict[str, tuple[str, list[int], Callable[[int], dict]]] = {
    "jpeg": ("JPEG", [1, 2, 3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95], lambda q: {"quality": q}),
    "webp": ("WEBP", [0, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95], lambda q: {"quality": q, "method": 6}),
    "jpeg2000": ("JPEG2000", [800, 400, 200, 150, 100, 70, 50, 35, 25, 16, 10, 6],
                 lambda q: {"quality_mode": "rates", "quality_layers": [q], "irreversible": True, "mct": 1}),
    "avif": ("AVIF", [2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90], lambda q: {"quality": q, "speed": 6}),
}


@dataclass
class Point:
    setting: int                      # iterations (lstmcodec) or quality setting
    bpp: list[float] = field(default_factory=list)        # one value per image
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    enc_s: list[float] = field(default_factory=list)
    dec_s: list[float] = field(default_factory=list)

    def add(self, bpp, psnr, msssim, enc, dec):
        self.bpp.append(bpp), self.psnr.append(psnr), self.ms_ssim.append(msssim)
        self.enc_s.append(enc), self.dec_s.append(dec)

    def mean(self, key: str) -> float:
        return float(np.mean(getattr(self, key)))


def shifted(rgb: np.ndarray) -> np.ndarray:
    """An image less its first row and column, cut to even sides: MS-SSIM's first 2x downsampling then pairs
    pixels one row and column away from where it pairs them in the whole image (which starts a block codec's grid),
    so it averages across its 2x2 cells instead of within them. A codec whose error is indifferent to its grid
    measures the same either way (bench --shift)."""
    h, w = rgb.shape[:2]
    return rgb[1:1 + (h - 1) // 2 * 2, 1:1 + (w - 1) // 2 * 2]


def measure(out: np.ndarray, rgb: np.ndarray, shift: bool = False) -> tuple[float, float]:
    """PSNR and MS-SSIM of a decoded image against its original (both `shifted` first with shift)."""
    if shift:
        out, rgb = shifted(out), shifted(rgb)
    return metrics.psnr(out, rgb), metrics.ms_ssim(out, rgb)


def load_images(paths, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """The RGB pixels of the images in `paths` (folders and files), at most `limit` of them; CodecError if none."""
    from lstmcodec.io.files import list_images
    from lstmcodec.errors import CodecError

    try:
        files = list_images([paths] if isinstance(paths, (str, Path)) else list(paths))[:limit]
    except FileNotFoundError as e:
        raise CodecError(str(e)) from None
    return [(f.name, prepare(open_image(f)).rgb) for f in files]


def prefixes(codec, rgb: np.ndarray, top: int, on_iteration: Callable[[int], None] | None = None
             ) -> Iterator[tuple[int, int, int, np.ndarray, float]]:
    """lstmcodec's files of one image at 1..top iterations, from one encode at `top` and one progressive decode:
    (k, the iterations the file of `-i k` holds, its bytes, its decoded pixels, the seconds that decode took) for
    each k. Each prefix is container.truncate's file, identical to `decode -i k`; a model with a linear tail may stop
    early where no block gains from more, and -i k then gives the same file as the last (and takes no decode)."""
    data = codec.encode_source(prepare(Image.fromarray(rgb)), top, on_iteration=on_iteration).data
    sizes = [round(b * rgb.shape[0] * rgb.shape[1] / 8) for b in info(data).bpp_per_iteration]
    dec = codec.decompress_progressive(data)
    out = None
    for k in range(1, top + 1):
        n, seconds = min(k, len(sizes)), 0.0
        if k == n:
            t1 = time.perf_counter()
            out = np.asarray(next(dec).convert("RGB"))
            seconds = time.perf_counter() - t1
        yield k, n, sizes[n - 1], out, seconds


def run_lstmcodec(images, iterations: Sequence[int], model: str, device: str, progress, shift: bool = False
                  ) -> list[Point]:
    codec = zoo.load_codec(model, device)
    top = max(iterations)
    points = {t: Point(t) for t in iterations}
    for name, rgb in images:
        h, w = rgb.shape[:2]
        marks: list[float] = []
        t0 = time.perf_counter()
        elapsed = 0.0
        for k, n, nbytes, out, seconds in prefixes(codec, rgb, top, lambda _k: marks.append(time.perf_counter() - t0)):
            elapsed += seconds
            if k in points:
                points[k].add(metrics.bpp(nbytes, w, h), *measure(out, rgb, shift), marks[n - 1], elapsed)
        progress(f"lstmcodec {name}")
    return [points[t] for t in sorted(points)]


def run_classic(name: str, images, progress, qualities: Sequence[int] | None = None, shift: bool = False
                ) -> list[Point]:
    fmt, grid, options = CLASSIC[name]
    points = []
    for q in qualities or grid:
        p = Point(q)
        for _, rgb in images:
            im = Image.fromarray(rgb)
            buf = io.BytesIO()
            t0 = time.perf_counter()
            im.save(buf, format=fmt, **options(q))
            enc = time.perf_counter() - t0
            t0 = time.perf_counter()
            with Image.open(io.BytesIO(buf.getvalue())) as d:
                out = np.asarray(d.convert("RGB"))
            dec = time.perf_counter() - t0
            p.add(metrics.bpp(len(buf.getvalue()), rgb.shape[1], rgb.shape[0]), *measure(out, rgb, shift), enc, dec)
        points.append(p)
        progress(f"{name} q={q}")
    return sorted(points, key=lambda p: p.mean("bpp"))


def available_codecs() -> list[str]:
    from PIL import features
    checks = {"jpeg": "jpg", "webp": "webp", "jpeg2000": "jpg_2000", "avif": "avif"}
    return [c for c, f in checks.items() if features.check(f)]


def compressai_json(name: str, description: str, points: list[Point], per_image: bool = False, images=None) -> dict:
    res = {
        "bpp": [p.mean("bpp") for p in points],
        "psnr-rgb": [p.mean("psnr") for p in points],
        "ms-ssim-rgb": [p.mean("ms_ssim") for p in points],
        "ms-ssim-rgb-db": [metrics.ms_ssim_db(p.mean("ms_ssim")) for p in points],
        "encoding_time": [p.mean("enc_s") for p in points],
        "decoding_time": [p.mean("dec_s") for p in points],
        "setting": [p.setting for p in points],
    }
    out = {"name": name, "description": description, "results": res}
    if per_image and images is not None:
        out["per_image"] = {
            img: {"bpp": [p.bpp[i] for p in points], "psnr-rgb": [p.psnr[i] for p in points],
                  "ms-ssim-rgb": [p.ms_ssim[i] for p in points]}
            for i, (img, _) in enumerate(images)
        }
    return out


def interpolate(points_x, points_y, x: float) -> float:
    """Linear interpolation in log-bpp; nan outside the measured range."""
    xs, ys = np.log(np.asarray(points_x)), np.asarray(points_y)
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    lx = math.log(x)
    if lx < xs[0] or lx > xs[-1]:
        return float("nan")
    return float(np.interp(lx, xs, ys))


def summary_table(ours: dict, others: dict[str, dict]) -> str:
    r = ours["results"]
    names = list(others)
    head = f"{'iter':>4} {'bpp':>7} {'PSNR':>6} {'MS-SSIM':>8} {'(min..max)':>15} {'enc s':>6} {'dec s':>6} | " + \
        " ".join(f"{n + ' MS-SSIM':>16}" for n in names)
    lines = [ours["description"], head, "-" * len(head)]
    per = ours.get("_ms_ssim_range", [(math.nan, math.nan)] * len(r["bpp"]))
    for i, it in enumerate(r["setting"]):
        cmp_ = " ".join(f"{interpolate(o['results']['bpp'], o['results']['ms-ssim-rgb'], r['bpp'][i]):>16.4f}" for o in others.values())
        lines.append(f"{it:>4} {r['bpp'][i]:>7.4f} {r['psnr-rgb'][i]:>6.2f} {r['ms-ssim-rgb'][i]:>8.4f} "
                     f"{per[i][0]:>7.4f}..{per[i][1]:.4f} {r['encoding_time'][i]:>6.2f} {r['decoding_time'][i]:>6.2f} | {cmp_}")
    lines.append("(classical MS-SSIM interpolated at lstmcodec's bpp in log-bpp; nan: outside that codec's measured range)")
    lines.append("")
    lines.append("Bjøntegaard delta rate of lstmcodec against each codec (negative: lstmcodec needs fewer bits)")
    for n, o in others.items():
        bd_ms = metrics.bd_rate(o["results"]["bpp"], o["results"]["ms-ssim-rgb-db"], r["bpp"], r["ms-ssim-rgb-db"])
        bd_ps = metrics.bd_rate(o["results"]["bpp"], o["results"]["psnr-rgb"], r["bpp"], r["psnr-rgb"])
        lines.append(f"  vs {n:9s} MS-SSIM (dB): {bd_ms:+7.1f}%   PSNR: {bd_ps:+7.1f}%")
    return "\n".join(lines)


def plot(results: list[dict], path: str | Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install 'lstmcodec[plot]'") from None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for res in results:
        r = res["results"]
        style = "o-" if res["name"].startswith("lstmcodec") else ".--"
        ms = r.get("ms-ssim-rgb-db") or ([metrics.ms_ssim_db(v) for v in r["ms-ssim-rgb"]] if "ms-ssim-rgb" in r else None)
        if ms:
            axes[0].plot(r["bpp"], ms, style, label=res["name"], ms=4)
        if "psnr-rgb" in r:
            axes[1].plot(r["bpp"], r["psnr-rgb"], style, label=res["name"], ms=4)
    for ax, label in zip(axes, ["MS-SSIM (RGB) [dB]", "PSNR (RGB) [dB]"]):
        ax.set_xlabel("bits per pixel"), ax.set_ylabel(label), ax.set_xlim(0, 2.1), ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def load_results(path: str | Path) -> list[dict]:
    """CompressAI-layout JSON (one object or a list), or a tensorflow-compression results .txt file
    (two columns, bpp and the metric its folder names: MS-SSIM_* or PSNR_*)."""
    path = Path(path)
    try:
        if path.suffix == ".txt":
            rows = [line.replace(",", " ").split() for line in path.read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
            bpp, value = zip(*((float(a), float(b)) for a, b, *_ in rows))
            key = "ms-ssim-rgb" if "MS-SSIM" in str(path) else "psnr-rgb"
            return [{"name": path.stem, "description": str(path), "results": {"bpp": list(bpp), key: list(value)}}]
        with open(path) as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a results file ({e})") from None
    return obj if isinstance(obj, list) else [obj]


def run(paths, iterations: Sequence[int], codecs: Sequence[str], model: str, device: str, limit: int | None,
        per_image: bool, quiet: bool = False, shift: bool = False) -> tuple[dict, dict[str, dict]]:
    images = load_images(paths, limit)
    where = paths if isinstance(paths, (str, Path)) else ", ".join(map(str, paths))
    if shift:
        where = f"{where}, measured shifted by one pixel"
    total = len(images) + sum(len(CLASSIC[c][1]) for c in codecs)
    done = [0]

    def progress(msg: str) -> None:
        done[0] += 1
        if not quiet:
            print(f"\r[{done[0]}/{total}] {msg:<40}", end="", file=sys.stderr, flush=True)

    ours_pts = run_lstmcodec(images, iterations, model, device, progress, shift)
    codec_info = zoo.load_codec(model, device)
    ours = compressai_json(f"lstmcodec ({codec_info.name})",
                           f"lstmcodec {codec_info.name} ({codec_info.fingerprint.hex()}, {codec_info.precision}), "
                           f"{len(images)} image{'s' * (len(images) != 1)} of {where}", ours_pts, per_image, images)
    ours["precision"] = codec_info.precision   # the network's arithmetic (--precision; auto depends on the CPU)
    ours["_ms_ssim_range"] = [(min(p.ms_ssim), max(p.ms_ssim)) for p in ours_pts]
    others = {}
    for c in codecs:
        pts = run_classic(c, images, progress, shift=shift)
        from PIL import __version__ as pil_version
        others[c] = compressai_json(c.upper() if c != "jpeg2000" else "JPEG 2000",
                                    f"{c} through Pillow {pil_version}, {len(images)} images of {where}",
                                    pts, per_image, images)
    if not quiet:
        print(file=sys.stderr)
    return ours, others
