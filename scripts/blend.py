#!/usr/bin/env python
"""Blend finished runs into one submission, fitted on the probe set.

``python scripts/blend.py ARGS`` is ``prizenet blend ARGS``; the logic and its help
(``--help``) are in :mod:`prizenet.cli.blend`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prizenet.cli.blend import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
