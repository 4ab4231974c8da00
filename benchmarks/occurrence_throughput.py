"""Occurrences end to end: `vigil bench occurrences`, under the name BENCHMARKS.md's
earlier runs give (the benchmark itself lives in `vigil.bench.occurrences`).

    .venv/bin/python benchmarks/occurrence_throughput.py [vigil bench occurrences options]
"""

import sys

from vigil.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "occurrences", *sys.argv[1:]]))
