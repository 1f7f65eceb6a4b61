"""``python -m raysearch.synth``: the ``raysearch synth`` command."""

import sys

from raysearch.commands.synth import main

if __name__ == "__main__":
    sys.exit(main())
