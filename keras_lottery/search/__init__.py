"""The ticket search: train, prune, rewind, repeat, through `model.fit`.

`settings` declares every setting once (type, default, meaning, check);
`preflight` checks the model and data before any training; `ticket_search`
runs the rounds; `training` trains one, `joint` several side by side,
`together` several searches' rounds as one; `callbacks` and `progress` watch it;
`state` snapshots and rewinds; `run_directory`, `run_lock` and `resume` keep
what is finished and refuse a resume of other settings; `results` and
`aggregate` read records back; `transfer` trains masks found elsewhere;
`export` rebuilds and saves a ticket from a run directory; `stability` and
`linear_path` measure how stable training from a start is (two copies, the
line between them) and choose the rewind step by it.
"""
