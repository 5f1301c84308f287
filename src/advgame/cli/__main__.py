"""``python -m advgame.cli``: the ``advgame`` command."""

import sys

from advgame.cli import main

sys.exit(main())
