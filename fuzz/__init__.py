"""Coverage-guided fuzzing (atheris/libFuzzer) of the frame decoder and of every command handler's input.

    python -m fuzz frames   WORKDIR SEEDS -max_total_time=60
    python -m fuzz handlers WORKDIR SEEDS -max_total_time=60

`make fuzz` runs both for FUZZ_SECONDS each; `make test` runs a short pass (tests/fuzz). Seeds live in
fuzz/corpus/<target>/ (regenerate with `python -m fuzz.seeds`).
"""
