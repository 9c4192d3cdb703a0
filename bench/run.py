"""Run the benchmarks: afbox against its plain peers, measured side by side in one run.

  .venv/bin/python bench/run.py            # everything, default sizes (under 10 min on 2 cores)
  .venv/bin/python bench/run.py --quick    # small sizes (under 2 min), for smoke tests
  .venv/bin/python bench/run.py facility   # only some: facility, data, scaling
  .venv/bin/python bench/run.py federation # two facilities in network namespaces (root; only when named)
Prints one table per benchmark and writes bench/results/<name>.json.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import save, table  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("only", nargs="*", metavar="NAME", help="benchmarks to run: facility, data, scaling, tui, class (default: all but class)")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    ap.add_argument("--delay-ms", type=float, default=20, help="one-way WAN delay between cache and origin")
    ap.add_argument("--mbit", type=float, default=100, help="WAN bandwidth between cache and origin")
    args = ap.parse_args(argv)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # teardown chatter of peer clusters
    from bench import bench_class, bench_data, bench_facility, bench_federation, bench_tui

    suites = {
        "facility": lambda: bench_facility.run(args.quick),
        "data": lambda: bench_data.wan_and_analysis(args.quick, args.delay_ms, args.mbit),
        "scaling": lambda: bench_data.scaling(args.quick),
        "tui": lambda: bench_tui.run(args.quick),
        "class": lambda: bench_class.run(args.quick),  # root only: asked for by name
        "federation": lambda: bench_federation.run(args.quick, args.delay_ms),
    }
    by_default = ["facility", "data", "scaling", "tui"]
    unknown = set(args.only) - set(suites)
    if unknown:
        ap.error(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(suites)}")
    t0 = time.monotonic()
    for name in args.only or by_default:
        print(f"== {name} ...", flush=True)
        rows, data = suites[name]()
        data["quick"] = args.quick
        print(table(rows), flush=True)
        print(f"written: {save(name + ('-quick' if args.quick else ''), data)}\n", flush=True)
    print(f"all done in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
