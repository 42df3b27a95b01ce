"""The command line's inputs and outputs: standard input and output (closed or failing: one line), the names of
outputs (never replacing a file or letting two inputs write one unless --force), and a batch of files where one bad
file does not stop the others."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .errors import CodecError
from .imageio import atomic_write


def err(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)


def note(msg: str, quiet: bool) -> None:
    if not quiet:
        click.echo(msg, err=True)


def read_input(name: str) -> bytes | str:
    if name != "-":
        return name
    if sys.stdin is None:
        raise CodecError("standard input is closed")
    try:
        return sys.stdin.buffer.read()
    except OSError as e:
        raise CodecError(f"cannot read standard input ({e.strerror or e})") from None


def write_output(path: str, data: bytes) -> None:
    if path != "-":
        atomic_write(path, data)
        return
    if sys.stdout is None:
        raise CodecError("standard output is closed")
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except OSError as e:
        detach_stdout()
        raise CodecError(f"cannot write to standard output ({e.strerror or e})") from None


def detach_stdout() -> None:
    """After a failed write to stdout, point it at /dev/null so that the interpreter's last flush is quiet."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def plan_outputs(inputs: tuple[str, ...], output: str | None, out_dir: str | None, suffix: str, force: bool,
                  tag: str = "") -> list[str]:
    """Where each input goes: IN's stem + tag + suffix, beside IN or in out_dir.
    Default names never overwrite an existing file without --force."""
    if output and out_dir:
        raise click.UsageError("give -o/--output or -d/--out-dir, not both")
    if output and len(inputs) > 1:
        raise click.UsageError("-o/--output takes one input; use -d/--out-dir for several")
    if "-" in inputs and len(inputs) > 1:
        raise click.UsageError("'-' (standard input) cannot be mixed with other inputs")
    if output:
        if output != "-" and Path(output).is_dir():
            raise CodecError(f"{output} is a directory")
        return [output]
    if out_dir:
        d = Path(out_dir)
        if not d.is_dir():
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise CodecError(f"{out_dir}: cannot create the folder ({e.strerror})") from None
        outs = [str(d / (("stdin" if i == "-" else Path(i).stem) + tag + suffix)) for i in inputs]
    else:
        outs = ["-" if i == "-" else str(Path(i).with_name(Path(i).stem + tag + suffix)) for i in inputs]
    seen: dict[str, str] = {}
    for i, o in zip(inputs, outs):
        if o == "-":
            continue
        if not force and Path(o).exists():
            raise CodecError(f"{o} already exists (name the output with -o, or pass --force to overwrite it)")
        key = str(Path(o).resolve())
        if key in seen and not force:
            raise CodecError(f"{seen[key]} and {i} would both be written to {o} (pass --force to let the last win)")
        seen[key] = i
    return outs


def run_batch(inputs, outputs, work, quiet: bool) -> int:
    """Run `work(input, output)` over all pairs; one bad file does not stop the others."""
    failed: list[str] = []
    pairs = list(zip(inputs, outputs))
    show_bar = len(pairs) > 1 and not quiet and sys.stderr.isatty()
    with click.progressbar(pairs, label="coding", file=sys.stderr) if show_bar else _NullBar(pairs) as bar:
        for inp, out in bar:
            if out != "-" and inp != "-" and Path(out).resolve() == Path(inp).resolve():
                err(f"{inp}: the output would overwrite the input")
                failed.append(inp)
                continue
            try:
                work(inp, out)
            except CodecError as e:
                err(str(e) if len(pairs) == 1 or str(e).startswith(inp) else f"{inp}: {e}")
                failed.append(inp)
    if failed and len(pairs) > 1:
        err(f"{len(failed)} of {len(pairs)} files failed: {', '.join(failed)}")
    return 1 if failed else 0


class _NullBar:
    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return self.items

    def __exit__(self, *exc):
        return False
