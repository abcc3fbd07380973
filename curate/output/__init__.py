"""The output transaction of a run: the lock (lock.py), the run state and commit records (state.py), the shard and
side-table writer (sink.py), checkpoints between phases (checkpoint.py), the resume plan (resume.py), the typed
figures (figures.py, measure.py), stats.json (stats.py), the commit (commit.py) and `curate verify` (verify.py).
The engine executes a plan and calls this package."""
