"""``python -m raysearch.predict``: the ``raysearch predict`` command."""

import sys

from raysearch.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
