#!/usr/bin/env python3
"""Side-by-side crops at equal file size: the original, lstmcodec, WebP and JPEG (and AVIF where Pillow has it).

    python scripts/visual.py ../shared/data/kodak --out results/visual

For each image and each iteration count, the lstmcodec file sets the byte budget; WebP and JPEG get the highest
quality whose file is not larger (a search over their whole quality range), so every other codec is shown at
<= lstmcodec's bytes; where even a codec's lowest quality makes a larger file, that file is shown, marked.
One PNG per image and rate: the crops side by side at 2x (nearest neighbour, so that blocking, ringing and blur
are visible as they are), each labelled with its bytes, PSNR and MS-SSIM of the
whole image. results/visual/README.md lists them with their numbers.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, features

ROOT = Path(__file__).resolve().parent.parent

# image, crop (left, top) of a CROP x CROP window chosen for detail: lettering and a coil spring, a face and hat,
# a parrot's feathers and eye
PICKS = {"kodim05": (300, 200), "kodim04": (180, 150), "kodim23": (280, 60)}
CROP = 160
SCALE = 2


def search(rgb: np.ndarray, fmt: str, budget: int, lo: int, hi: int, **options) -> tuple[int, bytes] | None:
    """The highest quality in [lo, hi] whose file is <= budget bytes (size rises with quality), or None."""
    best = None
    while lo <= hi:
        q = (lo + hi) // 2
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt, quality=q, **options)
        if len(buf.getvalue()) <= budget:
            best, lo = (q, buf.getvalue()), q + 1
        else:
            hi = q - 1
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kodak", help="the Kodak folder (kodim05.png, kodim04.png, kodim23.png)")
    p.add_argument("--out", default=str(ROOT / "results" / "visual"))
    p.add_argument("--iterations", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--model", default="default")
    args = p.parse_args(argv)

    from lstmcodec import api, metrics

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    others = [("WebP", "WEBP", 0, 100, {"method": 6}), ("JPEG", "JPEG", 1, 95, {})]
    if features.check("avif"):
        others.append(("AVIF", "AVIF", 0, 100, {"speed": 4}))
    rows = []
    for name, (x0, y0) in PICKS.items():
        path = Path(args.kodak) / f"{name}.png"
        if not path.exists():
            print(f"error: {path} not found", file=sys.stderr)
            return 1
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for t in args.iterations:
            data = api.encode(Image.fromarray(rgb), iterations=t, model=args.model)
            ours = np.asarray(api.decode(data).convert("RGB"))
            panels = [("original", rgb, None)]
            panels.append((f"lstmcodec -i {t}", ours, len(data)))
            for label, fmt, lo, hi, options in others:
                found = search(rgb, fmt, len(data), lo, hi, **options)
                over = found is None  # even its lowest quality makes a larger file: shown, and marked
                q, blob = found or search(rgb, fmt, 1 << 30, lo, lo, **options)
                with Image.open(io.BytesIO(blob)) as d:
                    panels.append((f"{label} q{q}" + (" (larger)" if over else ""), np.asarray(d.convert("RGB")),
                                   len(blob)))
            entry = {"image": name, "iterations": t, "crop": [x0, y0, CROP, CROP], "panels": []}
            tiles = []
            for label, im, nbytes in panels:
                crop = Image.fromarray(im[y0:y0 + CROP, x0:x0 + CROP]).resize((CROP * SCALE, CROP * SCALE),
                                                                              Image.NEAREST)
                text = label
                if nbytes is not None:
                    bpp = nbytes * 8 / (rgb.shape[0] * rgb.shape[1])
                    ps, ms = metrics.psnr(im, rgb), metrics.ms_ssim(im, rgb)
                    text += f"  {nbytes:,} B  {bpp:.3f} bpp  {ps:.2f} dB  {ms:.4f}"
                    entry["panels"].append({"codec": label, "bytes": nbytes, "bpp": round(bpp, 4),
                                            "psnr": round(ps, 3), "ms_ssim": round(ms, 5)})
                canvas = Image.new("RGB", (CROP * SCALE, CROP * SCALE + 18), "white")
                canvas.paste(crop, (0, 18))
                ImageDraw.Draw(canvas).text((3, 3), text, fill="black")
                tiles.append(canvas)
            sheet = Image.new("RGB", (sum(c.width for c in tiles) + 4 * (len(tiles) - 1), tiles[0].height), "white")
            x = 0
            for c in tiles:
                sheet.paste(c, (x, 0))
                x += c.width + 4
            file = out / f"{name}-i{t}.png"
            sheet.save(file, optimize=True)
            entry["file"] = file.name
            rows.append(entry)
            print(f"{file}: " + ", ".join(f"{q['codec']} {q['bytes']} B {q['psnr']:.2f} dB" for q in entry["panels"]),
                  file=sys.stderr)
    (out / "visual.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# At equal file size, by eye", "",
             f"`python scripts/visual.py ../shared/data/kodak` (model `{args.model}`). Each sheet: a {CROP}x{CROP} "
             f"crop shown at {SCALE}x (nearest neighbour): the original, lstmcodec, then WebP and JPEG at the highest "
             "quality whose file is not larger than lstmcodec's (where even the lowest quality makes a larger file, that "
             "file, marked \"larger\"). Bytes, bpp, PSNR (dB) and MS-SSIM are of the whole image.", "",
             "| sheet | " + " | ".join(q["codec"].split(" ")[0] for q in rows[0]["panels"]) + " |",
             "|---|" + "---|" * len(rows[0]["panels"])]
    for r in rows:
        lines.append(f"| [{r['file']}]({r['file']}) | " + " | ".join(
            f"{q['codec']}: {q['bytes']:,} B, {q['psnr']:.2f} dB, {q['ms_ssim']:.4f}" for q in r["panels"]) + " |")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
