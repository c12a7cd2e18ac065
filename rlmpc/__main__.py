"""``python -m rlmpc``: the ``rlmpc`` command."""

import sys

from rlmpc.cli import main

sys.exit(main())
