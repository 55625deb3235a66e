#!/usr/bin/env python
"""Judge a Prize-format submission against an answer key, as the Prize's judge did.

``python scripts/score.py ARGS`` is ``prizenet score ARGS``; the logic and its help
(``--help``) are in :mod:`prizenet.cli.score`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prizenet.cli.score import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
