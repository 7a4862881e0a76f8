"""`make bench`: run every benchmark script in this folder, one after the other, and print their figures.

Each script is bounded in count and time and talks only to loopback addresses.
Pass names to run a subset: `python -m benchmarks intake crosstab`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("*_bench.py"))
    if argv:
        scripts = [s for s in scripts if any(s.stem.startswith(name) for name in argv)]
    failed = 0
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
