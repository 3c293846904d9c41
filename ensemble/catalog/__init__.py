"""Ensembles: `spec` (pure values: an Ensemble, the DSL's limits, labels, fan-out and concat rules)
and `registry` (the named ensembles: their rows in the database, cached per process).

May import the models, `db`, `voting.methods` and `formats`; never the API, the completion service
or anything that speaks HTTP.
"""
