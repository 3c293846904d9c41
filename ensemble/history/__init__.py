"""Past votes: the reads behind the history pages and the Responses API's stored answers.

May import the models, `db` and the plain-value modules below it (voting, tools, aggregation,
backend's values); never api/, pages/ or anything that speaks HTTP.
"""
