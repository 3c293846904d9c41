"""The leaderboard: standings, time windows, the SQL aggregates behind them, ratings and
statistics, and the daily rollup of closed days.

May import the models and nothing else of Trio's: pages, history's prune and the commands
import it, never the other way round. Reading never writes: only `rollups` writes the rollup,
from `manage.py rollup_votes` (and seed_history), never from a page view.
"""
