"""``python -m raysearch.ensemble``: the ``raysearch ensemble`` command."""

import sys

from raysearch.commands.ensemble import main

if __name__ == "__main__":
    sys.exit(main())
