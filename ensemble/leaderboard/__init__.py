"""The leaderboard: standings, time windows, the SQL aggregates behind them, ratings and
statistics, and the daily rollup of closed days (the only code that writes it).

May import the models and nothing else of Trio's: pages and the rollup_votes command import
it, never the other way round. A GET reads here; only `rollups` writes, from a command.
"""
