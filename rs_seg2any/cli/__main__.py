"""``python -m rs_seg2any.cli``: the same as the ``rs-seg2any`` command."""

import sys

from . import main

sys.exit(main())
