"""Reference pages generated from the code: configuration, policies, metrics and the CLI.

`python -m gateway.docs_gen` writes them under docs/reference/; `--check` only compares, and
tests/docs/test_reference_drift.py fails when a committed page differs from what this makes."""
