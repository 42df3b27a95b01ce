"""lstmcodec bench, compare, plot, denoise and classify: measuring the codec, and the other tasks."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from lstmcodec.cli.cliio import err, note, plan_outputs, read_input, run_batch, write_output
from lstmcodec.cli.options import checked_output, cli, device_option, image_format, precision_option
from lstmcodec.errors import CodecError
from lstmcodec.io.files import atomic_write
from lstmcodec.io.imageio import encode_image_bytes, format_for, open_image
from lstmcodec.models.zoo import DEFAULT_CODEC, DEFAULT_DENOISER


def _parse_range(text: str) -> list[int]:
    """'1-16' or '1,2,4,8' -> list of ints."""
    out: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            out += list(range(int(a), int(b or a) + 1))
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a list or range of iteration counts") from None
    if not out or min(out) < 1:
        raise click.BadParameter("iteration counts start at 1")
    return sorted(set(out))


@cli.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--iterations", default="1-16", show_default=True, help="iteration counts to measure: a range or a list")
@click.option("--codecs", default="jpeg,webp,jpeg2000,avif", show_default=True, help="classical codecs (Pillow) beside it")
@click.option("--model", default=DEFAULT_CODEC, show_default=True)
@device_option
@precision_option
@click.option("-o", "--output", "out_dir", help="results: a .json file (a list, one CompressAI-layout object per codec) or a folder (one file per codec)")
@click.option("--plot", "plot_path", help="write an RD plot (MS-SSIM dB and PSNR against bpp); needs matplotlib")
@click.option("--compare", multiple=True, help="CompressAI-layout JSON files to overlay on the plot")
@click.option("--per-image", is_flag=True, help="store per-image values in the JSON")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="only the first N images")
@click.option("--shift", is_flag=True, help="measure every codec on the images less their first row and column (cut "
              "to even sides), so that MS-SSIM's 2x downsampling straddles the codecs' block grids")
@click.option("-q", "--quiet", is_flag=True)
def bench(images, iterations, codecs, model, device, out_dir, plot_path, compare, per_image, limit, shift, quiet) -> int:
    """Rate–distortion and speed of lstmcodec against JPEG, WebP, JPEG 2000 and AVIF on images (folders or files)."""
    from lstmcodec.evaluation import bench as bench_mod

    its = _parse_range(iterations)
    if plot_path and Path(plot_path).suffix.lower() not in (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps"):
        raise click.BadParameter(f"{plot_path}: a plot is written as .png, .svg, .pdf, .jpg or .eps",
                                 param_hint="--plot")
    names = [c.strip().lower() for c in codecs.split(",") if c.strip()]
    unknown = [c for c in names if c not in bench_mod.CLASSIC]
    if unknown:
        raise click.BadParameter(f"unknown codec(s): {', '.join(unknown)}", param_hint="--codecs")
    missing = [c for c in names if c not in bench_mod.available_codecs()]
    for c in missing:
        err(f"{c} is not available in this Pillow build; skipped")
    names = [c for c in names if c not in missing]
    ours, others = bench_mod.run(images, its, names, model, device, limit, per_image, quiet, shift)
    click.echo(bench_mod.summary_table(ours, others))
    results = [ours] + list(others.values())
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    if out_dir and out_dir.endswith(".json"):
        atomic_write(out_dir, (json.dumps(clean, indent=2) + "\n").encode())
        click.echo(f"results written to {out_dir}", err=True)
    elif out_dir:
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        for key, r in zip(["lstmcodec"] + list(others), clean):
            atomic_write(d / f"{key}.json", (json.dumps(r, indent=2) + "\n").encode())
        click.echo(f"results written to {d}/", err=True)
    if plot_path:
        try:
            extra = [r for f in compare for r in bench_mod.load_results(f)]
        except ValueError as e:
            raise CodecError(str(e)) from None
        try:
            bench_mod.plot(clean + extra, plot_path)
        except RuntimeError as e:
            raise CodecError(str(e)) from None
        click.echo(f"plot written to {plot_path}", err=True)
    return 0


@cli.command()
@click.argument("photos", nargs=-1, required=True)
@click.option("-o", "--output", default="compare.html", show_default=True, help="the page to write (one HTML file "
              "with its images inside: it works offline, from anywhere)")
@click.option("-i", "--iterations", default="1-16", show_default=True,
              help="lstmcodec's iteration counts the page steps through: a range or a list")
@click.option("--codecs", default="webp,jpeg,avif", show_default=True,
              help="the codecs shown beside lstmcodec, at its bytes (webp, jpeg, avif, jpeg2000)")
@click.option("--model", default=DEFAULT_CODEC, show_default=True, help="bundled model name or weights path")
@device_option
@precision_option
@click.option("-f", "--force", is_flag=True, help="overwrite an existing page")
@click.option("-q", "--quiet", is_flag=True, help="print only errors")
def compare(photos, output, iterations, codecs, model, device, force, quiet) -> int:
    """A page that shows lstmcodec beside WebP, JPEG and AVIF at the same file size, iteration by iteration: a split
    line to drag, an iteration slider, zoom and pan in step, each side's bytes, PSNR and MS-SSIM, and the photo's
    rate-distortion curves."""
    its = _parse_range(iterations)
    if its[-1] > 64:
        raise click.BadParameter("iteration counts go up to 64", param_hint="--iterations")
    if os.path.lexists(output) and not force:   # as default names: a dangling link names a file too
        raise CodecError(f"{output} exists (use --force to overwrite it)")
    from lstmcodec.evaluation import comparison

    names = comparison.check_codecs(codecs.split(","))
    total = len(photos) * (len(its) + len(names))
    done = [0]

    def progress(msg: str) -> None:
        done[0] += 1
        if not quiet:
            click.echo(f"\r[{done[0]}/{total}] {msg[-50:]:<50}", err=True, nl=False)

    comparison.compare(photos, output, its, names, model, device, progress)
    if not quiet:
        click.echo(f"\npage written to {output}", err=True)
    return 0


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="the plot image (png, svg, pdf)")
def plot(files, output) -> int:
    """Plot results files (CompressAI JSON, tensorflow-compression .txt) as RD curves; needs matplotlib."""
    from lstmcodec.evaluation import bench as bench_mod

    try:
        results = [r for f in files for r in bench_mod.load_results(f)]
        bench_mod.plot(results, output)
    except (ValueError, RuntimeError) as e:
        raise CodecError(str(e)) from None
    click.echo(f"plot written to {output}", err=True)
    return 0


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="output image; its suffix picks the format; '-' writes PNG to standard output")
@click.option("-d", "--out-dir", help="folder for the outputs of several inputs")
@click.option("--model", default=DEFAULT_DENOISER, show_default=True, help="bundled denoiser (photo, mnist) or weights path")
@click.option("--ensemble", is_flag=True, help="average 8 passes over rotations and mirror images: a little more PSNR, 8x the time")
@click.option("--format", "fmt", default=None, callback=image_format,
              help="output format when writing to '-' or a -d folder (default png)")
@device_option
@click.option("-f", "--force", is_flag=True, help="overwrite existing default-named outputs")
@click.option("-q", "--quiet", is_flag=True, help="print only errors")
def denoise(inputs, output, out_dir, model, ensemble, fmt, device, force, quiet) -> int:
    """Remove noise from images; writes IN-denoised.png beside each input unless told otherwise."""
    checked_output(output)
    from lstmcodec.tasks.denoiser import denoise as run_denoiser
    from lstmcodec.tasks.denoiser import get_denoiser

    outputs = plan_outputs(inputs, output, out_dir, "." + (fmt or "png").lower(), force, tag="" if out_dir else "-denoised")

    def work(inp: str, out: str) -> None:
        notices: list[str] = []
        source = open_image(read_input(inp), name="stdin" if inp == "-" else inp)
        get_denoiser(model, device)  # loaded once, outside the time reported
        start = time.perf_counter()
        image = run_denoiser(source, model, device, notices, ensemble)
        secs = time.perf_counter() - start
        data = encode_image_bytes(image, fmt or ("png" if out == "-" else format_for(out)), notices)
        for n in notices:
            note(f"notice: {inp}: {n}", quiet)
        write_output(out, data)
        mp = image.width * image.height / 1e6
        note(f"{inp} -> {out}: {image.width}x{image.height} {image.mode}, denoised in {secs:.2f} s ({secs / mp:.2f} s per megapixel)", quiet)

    return run_batch(inputs, outputs, work, quiet)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", default="cifar10", show_default=True, help="bundled classifier (cifar10, mnist) or weights path")
@click.option("--top", "-k", type=click.IntRange(min=1), default=3, show_default=True, help="how many classes to list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output: one JSON object per image, one per line")
@device_option
def classify(inputs, model, top, as_json, device) -> int:
    """Name what images show (images are resized to the model's input size)."""
    from lstmcodec.tasks.classifier import classify as run_classifier

    def work(inp: str, _out: str) -> None:
        preds = run_classifier(open_image(read_input(inp), name="stdin" if inp == "-" else inp), model, top, device)
        if as_json:
            click.echo(json.dumps({"image": inp, "predictions": [p.__dict__ for p in preds]}))
        else:
            click.echo(f"{inp}: " + ", ".join(f"{p.label} {p.probability:.1%}" for p in preds))

    if "-" in inputs and len(inputs) > 1:
        raise click.UsageError("'-' (standard input) cannot be mixed with other inputs")
    return run_batch(inputs, ["-"] * len(inputs), work, quiet=True)
