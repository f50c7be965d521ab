"""Runs every benchmark module, or the ones named: `python -m benchmarks [name ...]`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence

import django


def available() -> list[str]:
    """Benchmark modules in this package (private modules start with an underscore)."""
    package = os.path.dirname(__file__)
    return sorted(m.name for m in pkgutil.iter_modules([package]) if not m.name.startswith("_"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available()) or 'none'})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(available()))
        return 0
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available())})")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_dialer.settings")
    django.setup()

    verdicts: dict[str, str] = {}
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            met = importlib.import_module(f"benchmarks.{name}").main()
        except Exception:
            traceback.print_exc()
            verdicts[name] = "error"
            continue
        elapsed = time.perf_counter() - started
        verdicts[name] = {True: "targets met", False: "TARGETS MISSED", None: "done"}[met]
        print(f"--- {name}: {verdicts[name]} ({elapsed:.1f} s)", flush=True)

    print("\n=== summary ===")
    for name, verdict in verdicts.items():
        print(f"{name:24} {verdict}")
    return 0 if all(v in ("targets met", "done") for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
