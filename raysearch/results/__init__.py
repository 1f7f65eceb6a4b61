"""What a search leaves for its users: the trials read back (``records``), ranked and
aggregated over seeds (``rank``), the report's tables (``tables``), the Optuna plots
(``plots``), the files under ``results/`` (``write``) and the Tune callback that rewrites them
as trials end (``callback``). ``python -m raysearch.leaderboard`` is the command line."""
