import sys

try:
    from lstmcodec.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: one line, not a traceback
    print("error: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
