"""The staff HTML pages over the vote history and the leaderboard, and /leaderboard.json:
views, who may see them (access), their query-string forms, server-rendered SVG charts, urls.

May import history, leaderboard, the models and api's key check and error body; a view calls
a selector and renders, it aggregates nothing itself.
"""
