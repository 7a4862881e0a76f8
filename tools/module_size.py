"""Lists every Python module outside the tests longer than the limit, and fails if there is one.

A module that grows past the limit holds more than one thing; split it along what it does.
Run by `make lint`: `python -m tools.module_size [--limit N] [root]`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

LIMIT = 600
# Not the project's modules: tests may be longer, the rest is tooling, caches and environments.
SKIPPED_DIRS = {"tests", "node_modules", "__pycache__", "build", "dist"}


def modules(root: Path) -> Iterator[Path]:
    """Every .py file under `root`, leaving out the tests and hidden or generated folders."""
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.name.endswith(".egg-info"):
            continue
        if path.is_dir() and not path.is_symlink():
            if path.name not in SKIPPED_DIRS:
                yield from modules(path)
        elif path.suffix == ".py" and path.is_file():
            yield path


def oversized(root: Path, limit: int) -> list[tuple[Path, int]]:
    """(module, lines) of every module over `limit` lines, longest first."""
    sizes = [
        (path.relative_to(root), len(path.read_text(encoding="utf-8").splitlines()))
        for path in modules(root)
    ]
    return sorted(((p, n) for p, n in sizes if n > limit), key=lambda item: (-item[1], item[0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path.cwd())
    parser.add_argument("--limit", type=int, default=LIMIT, help=f"most lines (default {LIMIT})")
    args = parser.parse_args(argv)
    found = oversized(args.root, args.limit)
    for path, lines in found:
        print(f"{path}: {lines} lines, more than {args.limit}: split it along what it does")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
