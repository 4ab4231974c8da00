"""Check-ins end to end: `vigil bench checkins`, under the name BENCHMARKS.md's earlier
runs give (the benchmark itself lives in `vigil.bench.checkins`).

    .venv/bin/python benchmarks/checkin_throughput.py [vigil bench checkins options]
"""

import sys

from vigil.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "checkins", *sys.argv[1:]]))
