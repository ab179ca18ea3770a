"""ticketstream benchmarks: each `bench/bench_<name>.py` has a `main()` that measures one thing on this machine, prints
a table and writes bench/results/<name>.json. `python -m bench [name ...]` (or `make bench`) runs them; the figures
and how they were taken are in docs/benchmarks.md.

Importing this package puts this tree's services and shared code first, in this process and in the processes it
starts (PYTHONPATH): the virtualenv's editable install points at one checkout, and a worktree of an earlier commit,
measured as a baseline with the same virtualenv, would otherwise measure that checkout's code."""

import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
THIS_TREE = (str(_ROOT / "shared"), str(_ROOT / "services"))
sys.path[:0] = THIS_TREE
os.environ["PYTHONPATH"] = os.pathsep.join([*THIS_TREE, *filter(None, [os.environ.get("PYTHONPATH")])])
