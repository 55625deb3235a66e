#!/usr/bin/env python
"""Write a synthetic Netflix Prize (original layout plus answers.csv) with planted structure.

``python scripts/make_synthetic.py ARGS`` is ``prizenet make-synthetic ARGS``; the logic and its help
(``--help``) are in :mod:`prizenet.cli.synthetic`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prizenet.cli.synthetic import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
