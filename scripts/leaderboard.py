#!/usr/bin/env python
"""Every run under a folder, best probe RMSE first: the Prize's leaderboard for your runs.

``python scripts/leaderboard.py ARGS`` is ``prizenet leaderboard ARGS``; the logic and its help
(``--help``) are in :mod:`prizenet.cli.leaderboard`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prizenet.cli.leaderboard import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
