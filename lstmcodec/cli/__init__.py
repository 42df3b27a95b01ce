"""The command line: click commands, and their inputs and outputs (no torch until a command runs a network)."""
from lstmcodec.cli.commands import main

__all__ = ["main"]
