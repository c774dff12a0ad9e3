"""``python -m portside``: the ``portside`` command (see :mod:`portside.cli`)."""

import sys

from portside.cli import main

sys.exit(main())
