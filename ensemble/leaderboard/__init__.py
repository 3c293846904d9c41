"""The leaderboard: standings, time windows, the SQL aggregates behind them, ratings and
statistics, the daily rollup of closed days, and the what-if re-tally of stored ballots.

May import the models and the pure `voting` (whatif re-tallies with the live vote's functions),
nothing else of Trio's: pages, history's prune and the commands
import it, never the other way round. Reading never writes: only `rollups` writes the rollup,
from `manage.py rollup_votes` (and seed_history), never from a page view.
"""
