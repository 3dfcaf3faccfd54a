"""The soak: the multi-process topology under steady traffic while faults are injected, then a check
of every client's view against the database. `make soak` (SOAK_MINUTES, default 30); `make test` runs
a 2-minute pass (tests/soak)."""
