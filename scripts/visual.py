#!/usr/bin/env python3
"""The comparison page of three Kodak photographs, and the still of it that the README shows.

    python scripts/visual.py ../shared/data/kodak --out results/visual

Writes OUT/index.html (`lstmcodec compare` of 384x256 crops of kodim05, kodim04 and kodim23 — the lettering and
the coil spring, a face and hat, a parrot's feathers and eye — at -i 2, 4, 8 and 16 beside WebP, JPEG and AVIF at the
highest quality whose file is not larger; crops, so that the page stays small enough to keep in the repository),
OUT/visual.json (each side's numbers, without the images) and, where headless Chromium and Selenium are installed,
OUT/compare.png: the page as a browser shows it, kodim05 at -i 8, zoomed 2x, the split line a third of the way
across.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CROPS = {"kodim05": (220, 130), "kodim04": (60, 110), "kodim23": (200, 30)}   # left, top of a 384 x 256 crop
SIZE = (384, 256)


def screenshot(page: Path, png: Path) -> bool:
    """The page in headless Chromium: kodim05, -i 8, zoom 2x, panned to the lettering; False where there is none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return False
    chromium, driver = shutil.which("chromium") or shutil.which("google-chrome"), shutil.which("chromedriver")
    if not chromium or not driver:
        return False
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--force-device-scale-factor=1",
                "--window-size=1100,1000", "--force-color-profile=srgb"):
        opts.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        browser.get(page.resolve().as_uri())
        browser.execute_script(
            "state.step = 2; state.split = 0.36; render();"
            "document.querySelector(\"[data-zoom='2']\").click();"
            "state.tx = -120; state.ty = -100; layout();")
        browser.save_screenshot(str(png))
    finally:
        browser.quit()
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kodak", help="the Kodak folder (kodim05.png, kodim04.png, kodim23.png)")
    p.add_argument("--out", default=str(ROOT / "results" / "visual"))
    p.add_argument("--iterations", default="2,4,8,16")
    p.add_argument("--model", default="default")
    args = p.parse_args(argv)

    import lstmcodec

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    photos = []
    for name, (x, y) in CROPS.items():
        path = Path(args.kodak) / f"{name}.png"
        if not path.exists():
            print(f"error: {path} not found", file=sys.stderr)
            return 1
        photos.append(out / f"{name}-crop.png")
        Image.open(path).convert("RGB").crop((x, y, x + SIZE[0], y + SIZE[1])).save(photos[-1])
    try:
        html = lstmcodec.compare(photos, out / "index.html", [int(i) for i in args.iterations.split(",")],
                                 model=args.model, progress=lambda m: print(m, file=sys.stderr))
    except lstmcodec.CodecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from lstmcodec.evaluation.comparison import page_data

    data = page_data(html)
    for photo in data["photos"]:   # the numbers alone, for diffs and readers of the repository
        photo.pop("original")
        for shot in [*photo["lstmcodec"], *(s for shots in photo["codecs"].values() for s in shots)]:
            shot.pop("src")
    (out / "visual.json").write_text(json.dumps(data, indent=1) + "\n")
    for p in photos:   # the originals are inside the page
        p.unlink()
    if screenshot(out / "index.html", out / "compare.png"):
        print(f"{out / 'compare.png'} written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
