"""``python -m raysearch.cluster``: the ``raysearch cluster`` command."""

import sys

from raysearch.commands.cluster import main

if __name__ == "__main__":
    sys.exit(main())
