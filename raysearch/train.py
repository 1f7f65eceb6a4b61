"""``python -m raysearch.train``: the ``raysearch train`` command."""

import sys

from raysearch.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
