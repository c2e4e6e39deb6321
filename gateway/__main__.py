"""`python -m gateway serve` runs the gateway; `python -m gateway analyze ...` is the batch CLI (gateway/cli.py)."""

import sys

from gateway import cli

if __name__ == "__main__":
    sys.exit(cli.main())
