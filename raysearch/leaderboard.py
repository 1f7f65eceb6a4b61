"""``python -m raysearch.leaderboard``: the ``raysearch leaderboard`` command."""

import sys

from raysearch.commands.leaderboard import main

if __name__ == "__main__":
    sys.exit(main())
