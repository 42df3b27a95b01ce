"""The command line's inputs and outputs: standard input and output (closed or failing: one line), the names of
outputs (never replacing a file or letting two inputs write one unless --force), and a batch of files where one bad
file does not stop the others."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from lstmcodec.errors import CodecError
from lstmcodec.io.files import atomic_write


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
        if output != "-" and output.endswith(os.sep):
            raise CodecError(f"{output}: a folder name, not a file name (give the file, or -d for a folder of outputs)")
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
        if not force and os.path.lexists(o):   # a dangling link too: it names a file that would be created
            raise CodecError(f"{o} already exists (name the output with -o, or pass --force to overwrite it)")
        key = str(Path(o).resolve())
        if key in seen and not force:
            raise CodecError(f"{seen[key]} and {i} would both be written to {o} (pass --force to let the last win)")
        seen[key] = i
    return outs


@dataclass
class Batched:
    """run_batch's path for work whose middle step can take several inputs at once (the networks on a GPU): `load`
    reads one input, `code` codes a group of up to `size` loaded inputs in one call (a result each, in order), and
    `finish` writes one result. A group also ends once its loaded items hold `max_pixels` (`pixels` of each). Where
    `code` fails for a group, its inputs go through run_batch's `work` one at a time, so that each failure is
    reported against its own file."""

    size: int
    load: Callable[[str], Any]
    code: Callable[[list], list]
    finish: Callable[[str, str, Any, Any], None]
    pixels: Callable[[Any], int]
    max_pixels: int


def run_batch(inputs, outputs, work, quiet: bool, batched: Batched | None = None) -> int:
    """Run `work(input, output)` over all pairs (or `batched`'s steps over groups of them, where there are several
    inputs and its size is over 1); one bad file does not stop the others."""
    failed: list[str] = []
    pairs = list(zip(inputs, outputs))

    def attempt(inp: str, fn, *args) -> tuple[bool, Any]:
        try:
            return True, fn(*args)
        except CodecError as e:
            err(str(e) if len(pairs) == 1 or str(e).startswith(inp) else f"{inp}: {e}")
            failed.append(inp)
            return False, None

    def writable(inp: str, out: str) -> bool:
        if out != "-" and inp != "-" and Path(out).resolve() == Path(inp).resolve():
            err(f"{inp}: the output would overwrite the input")
            failed.append(inp)
            return False
        return True

    grouped = batched is not None and batched.size > 1 and len(pairs) > 1
    show_bar = len(pairs) > 1 and not quiet and sys.stderr.isatty()
    with click.progressbar(length=len(pairs), label="coding", file=sys.stderr) if show_bar else _NullBar() as bar:
        i = 0
        while i < len(pairs):
            if not grouped:
                inp, out = pairs[i]
                if writable(inp, out):
                    attempt(inp, work, inp, out)
                i += 1
                bar.update(1)
                continue
            loaded: list[tuple[str, str, Any]] = []
            start, held = i, 0
            while i < len(pairs) and len(loaded) < batched.size and held < batched.max_pixels:
                inp, out = pairs[i]
                i += 1
                if writable(inp, out):
                    ok, item = attempt(inp, batched.load, inp)
                    if ok:
                        loaded.append((inp, out, item))
                        held += batched.pixels(item)
            try:
                results = batched.code([x for _, _, x in loaded]) if loaded else []
            except CodecError:   # again one at a time, each failure named by its own file
                for inp, out, _ in loaded:
                    attempt(inp, work, inp, out)
            else:
                for (inp, out, item), res in zip(loaded, results):
                    attempt(inp, batched.finish, inp, out, item, res)
            bar.update(i - start)
    if failed and len(pairs) > 1:
        err(f"{len(failed)} of {len(pairs)} files failed: {', '.join(failed)}")
    return 1 if failed else 0


class _NullBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass
