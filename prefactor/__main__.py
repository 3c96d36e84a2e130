"""``python -m prefactor``: the command line."""

import sys

from prefactor._cli import main

sys.exit(main())
