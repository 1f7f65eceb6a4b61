"""``python -m raysearch.tune``: the ``raysearch tune`` command."""

import sys

from raysearch.commands.tune import main

if __name__ == "__main__":
    sys.exit(main())
