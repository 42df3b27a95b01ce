"""lstmcodec beside the classical codecs at the same file size, prefix by prefix: one page that works offline
(lstmcodec compare, lstmcodec.compare).

Each photo is encoded once at the most iterations asked and every prefix decoded (bench.prefixes: the files `-i k`
writes). For each prefix, every other codec gets the highest quality whose file is not larger (where even its
lowest quality makes a larger file, that file is shown, marked). Bytes, bpp, PSNR and MS-SSIM are measured as
`lstmcodec bench` measures them (bench.measure, on Pillow's decode of each file).

The page is one self-contained HTML file: its images are data: URIs (lstmcodec's prefixes and the original as
lossless WebP, so what is shown is exactly what was measured; the classical codecs' files as they are, decoded by
the browser as a user's browser would; JPEG 2000, which browsers do not decode, as lossless WebP of Pillow's
decode), its script and style inline. Nothing is fetched, nothing needs a server, and one file can be mailed,
archived or opened from a USB stick; it is written atomically, so a failed run leaves no page.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from lstmcodec import metrics
from lstmcodec.evaluation import bench
from lstmcodec.models import zoo
from lstmcodec.errors import CodecError
from lstmcodec.io.files import atomic_write
from lstmcodec.io.imageio import open_image, prepare

# name -> (label, MIME type of its file, quality range searched; None: JPEG 2000's compression ratio)
CODECS = {
    "webp": ("WebP", "image/webp", (0, 100)),
    "jpeg": ("JPEG", "image/jpeg", (1, 100)),
    "avif": ("AVIF", "image/avif", (0, 100)),
    "jpeg2000": ("JPEG 2000", None, None),
}
DEFAULT_CODECS = ("webp", "jpeg", "avif")


@dataclass
class Shot:
    """One side of the page at one step: a file's size and quality, and the image to show."""

    label: str
    setting: str        # "-i 8", "q 43", "ratio 61.2"
    nbytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    src: str            # a data: URI
    larger: bool = False  # even the codec's lowest quality is larger than the budget

    def to_dict(self) -> dict:
        return {"label": self.label, "setting": self.setting, "bytes": self.nbytes, "bpp": round(self.bpp, 4),
                "psnr": round(self.psnr, 3), "ms_ssim": round(self.ms_ssim, 5), "src": self.src, "larger": self.larger}


def data_uri(mime: str, blob: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(blob).decode('ascii')}"


def lossless_webp(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="WEBP", lossless=True, quality=20, method=2)
    return buf.getvalue()


class EqualBytes:
    """A classical codec's files of one image, searched by quality for byte budgets, each file measured once (the
    budgets of one photo's prefixes rise, so each search starts at the last one's quality, and neighbours often
    land on the same file)."""

    def __init__(self, name: str, rgb: np.ndarray):
        self.name, self.rgb = name, rgb
        self.fmt, _, self.options = bench.CLASSIC[name]
        self.files: dict[float, bytes] = {}
        self.shots: dict[float, Shot] = {}
        self.floor: float | None = None   # the last budget's quality: a larger budget's is not lower

    def file(self, q: float) -> bytes:
        if q not in self.files:
            buf = io.BytesIO()
            Image.fromarray(self.rgb).save(buf, format=self.fmt, **self.options(q))   # bench's options for a setting
            self.files[q] = buf.getvalue()
        return self.files[q]

    def shot(self, budget: int) -> Shot:
        """The file for `budget` bytes, measured as bench measures (bench.measure on Pillow's decode)."""
        q, larger = self.best(budget)
        if q not in self.shots:
            blob = self.file(q)
            with Image.open(io.BytesIO(blob)) as im:
                out = np.asarray(im.convert("RGB"))
            h, w = self.rgb.shape[:2]
            label, mime, _ = CODECS[self.name]
            src = data_uri(mime, blob) if mime else data_uri("image/webp", lossless_webp(out))
            setting = f"ratio {q:g}" if self.name == "jpeg2000" else f"q {q}"
            self.shots[q] = Shot(label, setting, len(blob), metrics.bpp(len(blob), w, h), *bench.measure(out, self.rgb),
                                 src)
        return dataclasses.replace(self.shots[q], larger=larger)

    def best(self, budget: int) -> tuple[float, bool]:
        """(setting, larger): the highest quality whose file is <= budget bytes, else the lowest quality (larger)."""
        if self.name == "jpeg2000":
            return self._ratio(budget)
        low, hi = CODECS[self.name][2]
        lo, found = low if self.floor is None else self.floor, None
        while lo <= hi:
            q = (lo + hi) // 2
            if len(self.file(q)) <= budget:
                found, lo = q, q + 1
            else:
                hi = q - 1
        if found is None:
            return low, True
        self.floor = found
        return found, False

    def _ratio(self, budget: int) -> tuple[float, bool]:
        """JPEG 2000 is asked for a compression ratio: the smallest (best quality) whose file fits, by bisection on a
        log scale between 2 and 2000 (to 2 decimals)."""
        lo, hi = 2.0, 2000.0
        if len(self.file(hi)) > budget:
            return hi, True
        for _ in range(12):
            mid = round(float(np.sqrt(lo * hi)), 2)
            if len(self.file(mid)) <= budget:
                hi = mid
            else:
                lo = mid
        return hi, False


def photo(codec, name: str, rgb: np.ndarray, iterations: Sequence[int], codecs: Sequence[str],
          progress: Callable[[str], None]) -> dict:
    """One photo's entry of the page: the original, lstmcodec's prefixes and each codec at their bytes."""
    h, w = rgb.shape[:2]
    wanted = set(iterations)
    ours: list[Shot] = []
    for k, n, nbytes, out, _ in bench.prefixes(codec, rgb, max(iterations)):
        if k in wanted:
            if ours and ours[-1].nbytes == nbytes and n < k:   # the model's tail stopped: the same file as before
                ours.append(dataclasses.replace(ours[-1], setting=f"-i {k} (stops at {n})"))
            else:
                ps, ms = bench.measure(out, rgb)
                ours.append(Shot("lstmcodec", f"-i {k}" + (f" (stops at {n})" if n < k else ""), nbytes,
                                 metrics.bpp(nbytes, w, h), ps, ms, data_uri("image/webp", lossless_webp(out))))
            progress(f"{name}: lstmcodec -i {k}")
    others: dict[str, list[dict]] = {}
    for c in codecs:
        search = EqualBytes(c, rgb)
        others[c] = [search.shot(shot.nbytes).to_dict() for shot in ours]
        progress(f"{name}: {CODECS[c][0]}")
    return {"name": name, "width": w, "height": h, "iterations": sorted(wanted),
            "original": data_uri("image/webp", lossless_webp(rgb)),
            "lstmcodec": [s.to_dict() for s in ours], "codecs": others}


def page(photos: list[dict], model: str, fingerprint: str, codecs: Sequence[str]) -> str:
    """The self-contained HTML page of photo entries (the template lstmcodec/evaluation/comparison.html with its data)."""
    template = resources.files("lstmcodec.evaluation").joinpath("comparison.html").read_text(encoding="utf-8")
    data = {"model": model, "fingerprint": fingerprint,
            "codecs": {c: CODECS[c][0] for c in codecs}, "photos": photos}
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")   # no "</script>" inside the script
    title = "lstmcodec compare: " + ", ".join(p["name"] for p in photos)
    return template.replace("{{TITLE}}", html.escape(title)).replace("{{DATA}}", blob)


def page_data(html_text: str) -> dict:
    """The data a page was made from (its photos' numbers and images), read back from the page."""
    start = html_text.index('<script id="compare-data" type="application/json">')
    start = html_text.index(">", start) + 1
    return json.loads(html_text[start:html_text.index("</script>", start)].replace("<\\/", "</"))


def check_codecs(codecs: Sequence[str]) -> list[str]:
    """The codec names, checked: known to the page and in this Pillow build (CodecError otherwise)."""
    names = [c.strip().lower() for c in codecs if c.strip()]
    unknown = [c for c in names if c not in CODECS]
    if unknown:
        raise CodecError(f"unknown codec(s): {', '.join(unknown)} (one of {', '.join(CODECS)})")
    missing = [c for c in names if c not in bench.available_codecs()]
    if missing:
        raise CodecError(f"{', '.join(missing)}: not available in this Pillow build")
    return list(dict.fromkeys(names))


def compare(photos, output: str | Path | None = None, iterations: Sequence[int] = range(1, 17),
            codecs: Sequence[str] = DEFAULT_CODECS, model: str = "default", device: str = "cpu",
            progress: Callable[[str], None] | None = None) -> str:
    """The comparison page of photos (paths, PIL images or arrays; one or a list) as HTML text, written to `output`
    when given. CodecError (one line) for an unreadable photo, a bad iteration list or an unknown codec."""
    its = sorted(set(int(i) for i in iterations))
    if not its or its[0] < 1 or its[-1] > 64:
        raise CodecError("iterations must be between 1 and 64")
    names = check_codecs(codecs)
    if isinstance(photos, (str, Path, np.ndarray, Image.Image)):
        photos = [photos]
    loaded = []
    for i, p in enumerate(photos):   # every photo read before any work: a bad one stops the run at once
        label = Path(p).name if isinstance(p, (str, Path)) else f"photo {i + 1}"
        loaded.append((label, prepare(open_image(p, label)).rgb))
    if not loaded:
        raise CodecError("no photo to compare")
    codec = zoo.load_codec(model, device)
    entries = [photo(codec, name, rgb, its, names, progress or (lambda _m: None)) for name, rgb in loaded]
    text = page(entries, codec.name, codec.fingerprint.hex(), names)
    if output is not None:
        atomic_write(output, text.encode("utf-8"))
    return text
