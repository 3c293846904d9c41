"""Past votes: the writer (`writer.py`: one thread, group commit; `rows.py` builds the rows,
`inserts.py` inserts them), the reads behind the history pages and the Responses API's stored
answers, human feedback on them, the export (JSONL, CSV) and the prune of old history.

May import the models, `db`, outcomes, the plain values below it (formats, voting) and
leaderboard.rollups (a prune forgets the rollup of the days it deletes); never api/, pages/,
completion/ or anything that speaks HTTP.
"""
