#!/usr/bin/env python
"""Build (or reuse) the columnar cache of a dataset and print what to check first.

``python scripts/prepare_data.py ARGS`` is ``prizenet prepare ARGS``; the logic and its help
(``--help``) are in :mod:`prizenet.cli.prepare`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prizenet.cli.prepare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
