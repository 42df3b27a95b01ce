"""The command line: encode, decode, info, bench, compare, plot, denoise, classify. Thin: parse, call, report, exit codes.

Exit codes: 0 success; 1 bad input, corrupt file or model mismatch (one line `error: ...`
on stderr); 2 usage; 130 interrupted. Outputs are written atomically; inputs are never touched.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import click

from lstmcodec import __version__
from lstmcodec.errors import CodecError
from lstmcodec.cli.cliio import Batched, detach_stdout, err, note, plan_outputs, read_input, run_batch, write_output
from lstmcodec.io.files import Terminated, atomic_write, read_file, remove_temporaries
from lstmcodec.io.imageio import encode_image_bytes, format_for, open_image, prepare
from lstmcodec.models.zoo import DEFAULT_CODEC, DEFAULT_DENOISER, PRECISIONS

# The heavy modules (torch, the networks) are imported inside the commands that run a network, so that --help,
# --version and info answer at once.


def _device(ctx, param, value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise click.BadParameter(f"'{value}' is not auto, cpu, cuda, cuda:N or mps")
    return value


device_option = click.option("--device", default="cpu", show_default=True, callback=_device,
                             help="auto, cpu, cuda, cuda:N or mps")


def _precision(ctx, param, value: str | None) -> str | None:
    from lstmcodec.models import zoo

    zoo.set_default_precision(value)
    return value


precision_option = click.option("--precision", type=click.Choice(PRECISIONS), default=None,
                                envvar="LSTMCODEC_PRECISION", callback=_precision, expose_value=False,
                                help="arithmetic of the codec's network: auto (bf16 for a model whose measured "
                                     "bf16 cost is within 0.5 % on a CPU with native bf16, else fp32), fp32 or "
                                     "bf16 [default: auto]")


class Finite(click.FloatRange):
    """A float range that also refuses NaN and infinities (click's range compares, and NaN passes every comparison)."""

    def convert(self, value, param, ctx):
        import math

        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


def _tiles(ctx, param, value: str) -> str:
    """auto, off, or a tile side in pixels that tiling accepts (a multiple of 16, at least 64), checked before any work."""
    from lstmcodec.coding.tiling import MIN_EXTENT
    from lstmcodec.geometry import BLOCK

    if value in ("auto", "off"):
        return value
    if not value.isdigit() or int(value) < MIN_EXTENT or int(value) % BLOCK:
        raise click.BadParameter(f"'{value}' is not auto, off or a tile side in pixels (a multiple of {BLOCK}, at "
                                 f"least {MIN_EXTENT})")
    return value


def _image_format(ctx, param, value: str | None) -> str | None:
    """--format: a format Pillow writes, by its usual suffix (png, jpg, webp, ...), checked before any work."""
    if value is None:
        return value
    try:
        format_for(f"x.{value}")
    except CodecError:
        raise click.BadParameter(f"'{value}' is not an image format Pillow knows (png, jpg, webp, tiff, ...)") from None
    return value.lower()


def _checked_output(output: str | None) -> None:
    """An output image's suffix names a format Pillow knows (before any work; exit 2 where it does not)."""
    if output and output != "-":
        try:
            format_for(output)
        except CodecError as e:
            raise click.BadParameter(str(e), param_hint="-o/--output") from None


batch_option = click.option("--batch", type=click.IntRange(min=1), default=None,
                            help="images the networks code at once, of one size [default: 16 on CUDA, 1 on the CPU, "
                                 "where one at a time is faster]")


def _batched(batch: int | None, device: str, load, code, finish, pixels) -> Batched:
    """run_batch's grouped path: --batch, or the device's default (codec.default_batch), images at a time, and at
    most codec.BATCH_PIXELS of them held."""
    from lstmcodec.coding.codec import BATCH_PIXELS, default_batch
    from lstmcodec.models.zoo import select

    size = batch if batch is not None else default_batch(select(device))
    return Batched(size, load, lambda items: code(items, size), finish, pixels, BATCH_PIXELS)


def _per_codec(items: list, run) -> list:
    """run(codec, inputs) over (codec, input) pairs, one call per codec (files may name different models); the
    results in the items' order."""
    results: list = [None] * len(items)
    for codec in {id(c): c for c, _ in items}.values():
        idx = [k for k, (c, _) in enumerate(items) if c is codec]
        for k, r in zip(idx, run(codec, [items[k][1] for k in idx])):
            results[k] = r
    return results


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lstmcodec")
def cli() -> None:
    """A learned image codec: recurrent ConvLSTM networks (Toderici et al. 2017)."""


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="output file ('-' for standard output)")
@click.option("-d", "--out-dir", help="folder for the outputs of several inputs")
@click.option("-i", "--iterations", type=click.IntRange(1, 64), default=None,
              help="iterations: each adds 0.125 bpp before entropy coding [default: 8; with a rate target, the most to try: 16]")
@click.option("--bpp", type=Finite(min=0, min_open=True), help="rate target: the most iterations that fit this many bits per pixel")
@click.option("--size", type=click.IntRange(min=1), help="rate target: the most iterations that fit this many bytes")
@click.option("--quality", type=Finite(0, 1), help="quality target: the fewest iterations reaching this MS-SSIM")
@click.option("--adaptive", "adaptive_mode", is_flag=True, help="with --quality: each tile stops receiving iterations once its own quality is reached")
@click.option("--tile", type=click.Choice(["16", "32", "64", "128"]), default="32", show_default=True,
              help="tile side in pixels for --adaptive")
@click.option("--tiles", default="auto", show_default=True, metavar="auto|off|PIXELS", callback=_tiles,
              help="code the image in overlapping tiles of this side (bounded memory); auto: images over "
                   "2.1 megapixels in 1024-px tiles")
@click.option("--model", default=DEFAULT_CODEC, show_default=True, help="bundled model name or weights path")
@click.option("--denoise", "denoise_first", is_flag=True, help="denoise before coding (noise costs bits)")
@click.option("--denoiser", default=DEFAULT_DENOISER, show_default=True, help="the denoiser --denoise uses: bundled name or weights path")
@device_option
@precision_option
@batch_option
@click.option("-f", "--force", is_flag=True, help="overwrite existing default-named outputs")
@click.option("-q", "--quiet", is_flag=True, help="print only errors")
def encode(inputs, output, out_dir, iterations, bpp, size, quality, adaptive_mode, tile, tiles, model, denoise_first,
           denoiser, device, batch, force, quiet) -> int:
    """Compress images (PNG, JPEG, ...; '-' reads standard input) to .lstm files."""
    if sum(v is not None for v in (bpp, size, quality)) > 1:
        raise click.UsageError("give at most one of --bpp, --size and --quality")
    if adaptive_mode and quality is None:
        raise click.UsageError("--adaptive needs --quality")
    ctx = click.get_current_context()
    if not adaptive_mode and ctx.get_parameter_source("tile") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--tile is the tile side of --adaptive; without --adaptive it has no effect")
    if adaptive_mode and tiles != "auto":
        raise click.UsageError("--adaptive does not combine with --tiles")
    if batch is not None and (adaptive_mode or tiles != "auto" or any(v is not None for v in (bpp, size, quality))):
        raise click.UsageError("--batch codes a fixed number of iterations: it does not combine with --bpp, --size, "
                               "--quality, --adaptive or --tiles")
    from lstmcodec.coding import adaptive, ratecontrol
    from lstmcodec import api

    target = ratecontrol.RateTarget(bpp, size, quality) if any(v is not None for v in (bpp, size, quality)) else None
    outputs = plan_outputs(inputs, output, out_dir, ".lstm", force)
    max_iterations = iterations or (16 if target else 8)

    def load(inp: str):
        image = open_image(read_input(inp), name="stdin" if inp == "-" else inp)
        if denoise_first:
            from lstmcodec.tasks.denoiser import denoise as run_denoiser
            image = run_denoiser(image, denoiser, device)
        return prepare(image)

    def finish(inp: str, out: str, src, res, chosen: int) -> None:
        for n in res.notices:
            note(f"notice: {inp}: {n}", quiet)
        write_output(out, res.data)
        h, w = src.rgb.shape[:2]
        note(f"{inp} -> {out}: {w}x{h}, {chosen} iterations, {len(res.data)} bytes, "
              f"{8 * len(res.data) / (w * h):.4f} bpp", quiet)

    def work(inp: str, out: str) -> None:
        src = load(inp)
        if adaptive_mode:
            res, run = adaptive.encode_adaptive(api.encoder(src, model, device), src, quality, max_iterations, int(tile))
            chosen = len(run.planes)
            if run.counts.min() == run.counts.max():
                note(f"{inp}: uniform iterations were the smallest file: every tile gets {chosen}", quiet)
            else:
                note(f"{inp}: tiles of {tile} px get {run.counts.min()} to {run.counts.max()} iterations "
                      f"(mean {run.counts.mean():.2f})", quiet)
        elif target is None:
            res, chosen = api.encode_image(src, max_iterations, model, device, tiles), max_iterations
        else:
            res, chosen = ratecontrol.encode_to_target(api.encoder(src, model, device), src, target, max_iterations, tiles)
            note(f"{inp}: chose {chosen} iterations", quiet)
        finish(inp, out, src, res, chosen)

    batched = None
    if target is None and not adaptive_mode and tiles == "auto":   # several images through the networks at once
        def load_for_codec(inp: str):
            src = load(inp)
            return api.encoder(src, model, device), src

        batched = _batched(batch, device, load_for_codec,
                           lambda items, size: _per_codec(items, lambda codec, srcs: codec.encode_sources(
                               srcs, max_iterations, size)),
                           lambda inp, out, item, res: finish(inp, out, item[1], res, max_iterations),
                           lambda item: item[1].rgb.shape[0] * item[1].rgb.shape[1])
    return run_batch(inputs, outputs, work, quiet, batched)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="output image; its suffix picks the format (png, jpg, webp, ...); '-' writes PNG to standard output")
@click.option("-d", "--out-dir", help="folder for the outputs of several inputs")
@click.option("-i", "--iterations", type=click.IntRange(1, 64), default=None, help="decode only the first N iterations")
@click.option("--format", "fmt", default=None, callback=_image_format,
              help="output format when writing to '-' or a -d folder (default png)")
@click.option("--model", default=None, help="weights path, when the file's model is not bundled")
@device_option
@precision_option
@batch_option
@click.option("-f", "--force", is_flag=True, help="overwrite existing default-named outputs")
@click.option("-q", "--quiet", is_flag=True, help="print only errors")
def decode(inputs, output, out_dir, iterations, fmt, model, device, batch, force, quiet) -> int:
    """Decompress .lstm files to images ('-' reads standard input)."""
    _checked_output(output)
    suffix = "." + (fmt or "png").lower()
    outputs = plan_outputs(inputs, output, out_dir, suffix, force)

    from lstmcodec import api
    from lstmcodec.format.container import read_header

    def load(inp: str):
        data = read_input(inp)
        data = read_file(data) if isinstance(data, str) else data
        return api.decoder(data, model, device), data

    def finish(inp: str, out: str, image) -> None:
        notices: list[str] = []
        write_output(out, encode_image_bytes(image, fmt or ("png" if out == "-" else format_for(out)), notices))
        for n in notices:
            note(f"notice: {inp}: {n}", quiet)
        note(f"{inp} -> {out}: {image.width}x{image.height} {image.mode}", quiet)

    def work(inp: str, out: str) -> None:
        codec, data = load(inp)
        finish(inp, out, codec.decompress(data, iterations))

    def pixels(item) -> int:
        header = read_header(item[1])[0]
        return header.height * header.width

    batched = _batched(batch, device, load,
                       lambda items, size: _per_codec(items, lambda codec, datas: codec.decompress_many(
                           datas, iterations, size)),
                       lambda inp, out, item, image: finish(inp, out, image), pixels)
    return run_batch(inputs, outputs, work, quiet, batched)


@cli.command()
@click.argument("input")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--map", "map_path", help="write the iteration map of an adaptive file as an image (brighter: more iterations)")
def info(input, as_json, map_path) -> int:
    """Describe a .lstm file: size, mode, iterations, bytes per iteration, bpp, model."""
    from lstmcodec.format import fileinfo

    data = sys.stdin.buffer.read() if input == "-" else read_file(input)
    fi = fileinfo.info(data)
    if map_path:
        if fi.tile_iterations is None:
            raise CodecError(f"{input}: not an adaptive file; it has no iteration map")
        write_output(map_path, encode_image_bytes(fileinfo.map_image(fi), format_for(map_path)))
    from lstmcodec.models.zoo import not_bundled

    unbundled = not_bundled(fi.model, fi.fingerprint)   # what decodes a file this version's models do not
    if as_json:
        click.echo(json.dumps({**fi.to_dict(), "decodable": unbundled is None, "note": unbundled}, indent=2))
        return 0
    truncated = "" if fi.iterations == fi.declared_iterations else f" (of {fi.declared_iterations}: a prefix)"
    click.echo(f"{input}: {fi.width}x{fi.height} {fi.mode}, {fi.iterations} iterations{truncated}, "
               f"{fi.file_bytes} bytes, {fi.bpp:.4f} bpp")
    click.echo(f"model: {fi.model} ({fi.fingerprint})" + (f"; {unbundled}" if unbundled else ""))
    click.echo(f"header and metadata: {fi.file_bytes - sum(fi.iteration_bytes)} bytes")
    if fi.tile_iterations is not None:
        counts = [c for row in fi.tile_iterations for c in row]
        click.echo(f"adaptive: {len(counts)} tiles of {fi.tile} px, {min(counts)} to {max(counts)} iterations "
                   f"(mean {sum(counts) / len(counts):.2f})")
    if fi.tiles is not None:
        t = fi.tiles
        click.echo(f"tiled: {t['rows']} x {t['columns']} tiles of {t['side']} px overlapping by {t['overlap']} px")
    for k, (nb, b) in enumerate(zip(fi.iteration_bytes, fi.bpp_per_iteration), start=1):
        click.echo(f"  iteration {k:2d}: {nb:8d} bytes   cumulative {b:.4f} bpp")
    return 0


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
@click.option("--format", "fmt", default=None, callback=_image_format,
              help="output format when writing to '-' or a -d folder (default png)")
@device_option
@click.option("-f", "--force", is_flag=True, help="overwrite existing default-named outputs")
@click.option("-q", "--quiet", is_flag=True, help="print only errors")
def denoise(inputs, output, out_dir, model, ensemble, fmt, device, force, quiet) -> int:
    """Remove noise from images; writes IN-denoised.png beside each input unless told otherwise."""
    _checked_output(output)
    from lstmcodec.tasks.denoiser import denoise as run_denoiser, get_denoiser

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


def _terminate(signum, _frame) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; every failure is one `error:` line on stderr and an exit status (module docstring)."""
    import signal

    from lstmcodec.io import imageio

    imageio.COMMAND_LINE = True
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            try:
                signal.signal(sig, _terminate)   # so that an output's temporary file is removed (files.py)
            except ValueError:   # not the main thread: the caller handles signals
                pass
    try:
        # make_context and invoke, not cli.main: click's main prints an empty line before its Abort on Ctrl-C
        with cli.make_context("lstmcodec", list(sys.argv[1:] if argv is None else argv)) as ctx:
            rv = cli.invoke(ctx)
        return rv if isinstance(rv, int) else 0
    except Terminated as e:
        remove_temporaries()
        err("terminated")
        return 128 + e.signum
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        hint = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None else ""
        err(" ".join(e.format_message().split()) + hint)
        return 2
    except click.ClickException as e:
        err(" ".join(e.format_message().split()))
        return 1
    except (click.exceptions.Abort, KeyboardInterrupt):
        err("interrupted")
        return 130
    except CodecError as e:
        err(str(e))
        return 1
    except BrokenPipeError:
        detach_stdout()
        err("standard output was closed before everything was written")
        return 1
    except MemoryError:
        err("not enough memory for this input")
        return 1
