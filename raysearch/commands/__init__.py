"""The command lines: one module per command (``synth``, ``prepare``, ``train``, ``tune``,
``leaderboard``, ``predict``), each a thin argparse layer over typed functions of the other
rooms; ``cli`` is the ``raysearch COMMAND`` dispatcher and ``options`` the options several
commands share. ``python -m raysearch.COMMAND`` runs the same ``main`` (the small modules of
that name at the package's top level)."""
