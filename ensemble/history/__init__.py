"""Past votes: the reads behind the history pages and the Responses API's stored answers, human
feedback on them, the export (JSONL, CSV) and the prune of old history.

May import the models, `db`, the plain-value modules below it (voting, tools, aggregation,
backend's values) and leaderboard.rollups (a prune forgets the rollup of the days it deletes);
never api/, pages/ or anything that speaks HTTP.
"""
