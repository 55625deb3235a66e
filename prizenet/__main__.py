"""``python -m prizenet COMMAND ...`` is the ``prizenet`` console command (:mod:`prizenet.cli`)."""

import sys

from prizenet.cli import main

sys.exit(main())
