"""``python -m raysearch.baseline``: the ``raysearch baseline`` command."""

import sys

from raysearch.commands.baseline import main

if __name__ == "__main__":
    sys.exit(main())
