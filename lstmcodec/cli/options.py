"""The command line's group and the options and checks its commands share (no torch at import)."""
from __future__ import annotations

import math
import re

import click

from lstmcodec import __version__
from lstmcodec.errors import CodecError
from lstmcodec.io.imageio import format_for
from lstmcodec.models.zoo import PRECISIONS

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

        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


def parse_tiles(ctx, param, value: str) -> str:
    """auto, off, or a tile side in pixels that tiling accepts (a multiple of 16, at least 64), checked before any work."""
    from lstmcodec.format.tiling import MIN_EXTENT
    from lstmcodec.geometry import BLOCK

    if value in ("auto", "off"):
        return value
    if not value.isdigit() or int(value) < MIN_EXTENT or int(value) % BLOCK:
        raise click.BadParameter(f"'{value}' is not auto, off or a tile side in pixels (a multiple of {BLOCK}, at "
                                 f"least {MIN_EXTENT})")
    return value


def image_format(ctx, param, value: str | None) -> str | None:
    """--format: a format Pillow writes, by its usual suffix (png, jpg, webp, ...), checked before any work."""
    if value is None:
        return value
    try:
        format_for(f"x.{value}")
    except CodecError:
        raise click.BadParameter(f"'{value}' is not an image format Pillow knows (png, jpg, webp, tiff, ...)") from None
    return value.lower()


def checked_output(output: str | None) -> None:
    """An output image's suffix names a format Pillow knows (before any work; exit 2 where it does not)."""
    if output and output != "-":
        try:
            format_for(output)
        except CodecError as e:
            raise click.BadParameter(str(e), param_hint="-o/--output") from None


batch_option = click.option("--batch", type=click.IntRange(min=1), default=None,
                            help="images the networks code at once, of one size [default: 16 on CUDA, 1 on the CPU, "
                                 "where one at a time is faster]")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lstmcodec")
def cli() -> None:
    """A learned image codec: recurrent ConvLSTM networks (Toderici et al. 2017)."""
