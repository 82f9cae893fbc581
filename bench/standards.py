"""The standards benchmark in one command: EPCIS 2.0 events imported through the
real append path (bench/epcis.py) and FSMA 204 rows exported at 1,000,000 records
(bench/fsma.py), each printing its own table with the ceilings measured in the same run.

    python bench/standards.py [--events 100000] [--records 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="EPCIS events to import")
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the FSMA export")
    args = parser.parse_args()
    # Each half in its own process, so that neither one's memory or threads weigh on the other.
    for script, flag, value in (("epcis.py", "--events", args.events), ("fsma.py", "--records", args.records)):
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), flag, str(value)], check=True)


if __name__ == "__main__":
    main()
