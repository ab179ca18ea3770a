"""`python -m bench [name ...]`: run every `bench/bench_*.py` module's `main()`, or only the named ones.

Names are given without the `bench_` prefix (`python -m bench intake`), with it, or as file names. Each benchmark
runs with its own defaults: it sees no command-line arguments (run `python bench/bench_<name>.py --help` for its
options). A failing benchmark is reported and the others still run; the exit code is 1 if any failed. A signal
(SIGTERM, SIGHUP) that ends a benchmark ends the whole run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def available() -> dict[str, str]:
    """{short name: module name} of every bench/bench_*.py, in name order."""
    return {path.stem.removeprefix("bench_"): f"bench.{path.stem}" for path in sorted(BENCH_DIR.glob("bench_*.py"))}


def select(names: Sequence[str], benchmarks: dict[str, str]) -> list[str]:
    if not names:
        return list(benchmarks)
    chosen = []
    for name in names:
        short = Path(name).stem.removeprefix("bench_")
        if short not in benchmarks:
            raise SystemExit(f"no benchmark {name!r}; available: {', '.join(benchmarks) or 'none'}")
        chosen.append(short)
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    benchmarks = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(benchmarks)})")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # deploy/ is not an installed package

    failed = []
    for name in select(args.names, benchmarks):
        module_name = benchmarks[name]
        print(f"=== {name} ({module_name}) ===", flush=True)
        began = time.monotonic()
        saved_argv = sys.argv
        sys.argv = [str(BENCH_DIR / f"{module_name.rsplit('.', 1)[1]}.py")]  # mains that parse sys.argv see none
        try:
            importlib.import_module(module_name).main()
        except KeyboardInterrupt:
            raise
        except SystemExit as error:
            if isinstance(error.code, int) and error.code >= 128:
                raise  # a signal (SIGTERM, SIGHUP) ended the benchmark: stop the whole run, not just this one
            if error.code not in (None, 0):  # e.g. argparse, or a benchmark giving up
                print(f"{name} exited with {error.code}", file=sys.stderr)
                failed.append(name)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        finally:
            sys.argv = saved_argv
        print(f"=== {name}: {'failed' if name in failed else 'done'} in {time.monotonic() - began:.0f} s ===\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
