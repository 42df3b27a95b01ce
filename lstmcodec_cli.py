"""The `lstmcodec` command's entry point, outside the package so that nothing is imported before it can catch
an interrupt: Ctrl-C while the modules load ends with one line, not a traceback."""
import sys


def main() -> int:
    try:
        from lstmcodec.cli import main as cli_main
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
