"""lstmcodec encode, decode and info: images to .lstm files and back (one at a time or in batches), and what a file
holds. Thin: parse, call, report."""
from __future__ import annotations

import json
import sys

import click

from lstmcodec.cli.cliio import Batched, note, plan_outputs, read_input, run_batch, write_output
from lstmcodec.cli.options import (Finite, batch_option, checked_output, cli, device_option, image_format, parse_tiles,
                                   precision_option)
from lstmcodec.errors import CodecError
from lstmcodec.geometry import BLOCK
from lstmcodec.io.files import read_file
from lstmcodec.io.imageio import encode_image_bytes, format_for, open_image, prepare
from lstmcodec.models.zoo import DEFAULT_CODEC, DEFAULT_DENOISER


def _batched(batch: int | None, device: str, load, code, finish, pixels) -> Batched:
    """run_batch's grouped path: --batch, or the device's default (coding.batching.default_batch), images at a time,
    and at most batching.BATCH_PIXELS of them held."""
    from lstmcodec.coding.batching import BATCH_PIXELS, default_batch
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
@click.option("--tiles", default="auto", show_default=True, metavar="auto|off|PIXELS", callback=parse_tiles,
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
    from lstmcodec import api
    from lstmcodec.coding import adaptive, batching, ratecontrol

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
                note(f"{inp}: tiles of {run.tile * BLOCK} px get {run.counts.min()} to {run.counts.max()} iterations "
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
                           lambda items, size: _per_codec(items, lambda codec, srcs: batching.encode_sources(codec,
                               srcs, max_iterations, size)),
                           lambda inp, out, item, res: finish(inp, out, item[1], res, max_iterations),
                           lambda item: item[1].rgb.shape[0] * item[1].rgb.shape[1])
    return run_batch(inputs, outputs, work, quiet, batched)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="output image; its suffix picks the format (png, jpg, webp, ...); '-' writes PNG to standard output")
@click.option("-d", "--out-dir", help="folder for the outputs of several inputs")
@click.option("-i", "--iterations", type=click.IntRange(1, 64), default=None, help="decode only the first N iterations")
@click.option("--format", "fmt", default=None, callback=image_format,
              help="output format when writing to '-' or a -d folder (default png)")
@click.option("--model", default=None, help="weights path, when the file's model is not bundled")
@device_option
@precision_option
@batch_option
@click.option("-f", "--force", is_flag=True, help="overwrite existing default-named outputs")
@click.option("-q", "--quiet", is_flag=True, help="print only errors")
def decode(inputs, output, out_dir, iterations, fmt, model, device, batch, force, quiet) -> int:
    """Decompress .lstm files to images ('-' reads standard input)."""
    checked_output(output)
    suffix = "." + (fmt or "png").lower()
    outputs = plan_outputs(inputs, output, out_dir, suffix, force)

    from lstmcodec import api
    from lstmcodec.coding import batching
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
                       lambda items, size: _per_codec(items, lambda codec, datas: batching.decompress_many(codec,
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
