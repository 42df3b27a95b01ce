"""The command line: click commands (commands.py: encode, decode, info; tools.py: bench, compare, plot, denoise,
classify), the options they share (options.py) and their inputs and outputs (cliio.py). No torch until a command
runs a network.

Exit codes: 0 success; 1 bad input, corrupt file or model mismatch (one line `error: ...`
on stderr); 2 usage; 130 interrupted. Outputs are written atomically; inputs are never touched.
"""
from __future__ import annotations

import sys

import click

from lstmcodec.cli import commands, tools  # noqa: F401 (they register their commands on the group)
from lstmcodec.cli.cliio import detach_stdout, err
from lstmcodec.cli.options import cli
from lstmcodec.errors import CodecError
from lstmcodec.io.files import Terminated, remove_temporaries

__all__ = ["cli", "main"]


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
