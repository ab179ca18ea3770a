"""ticketstream benchmarks: each `bench/bench_<name>.py` has a `main()` that measures one thing on this machine, prints
a table and writes bench/results/<name>.json. `python -m bench [name ...]` (or `make bench`) runs them; the figures
and how they were taken are in docs/benchmarks.md."""
