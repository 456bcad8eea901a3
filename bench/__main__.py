"""``python -m bench``: every benchmark comparison in one run (see bench/run_all.py)."""

import sys

from bench.run_all import main

sys.exit(main())
