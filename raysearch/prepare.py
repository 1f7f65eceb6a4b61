"""``python -m raysearch.prepare``: the ``raysearch prepare`` command."""

import sys

from raysearch.commands.prepare import main

if __name__ == "__main__":
    sys.exit(main())
