"""``python -m jester.open_clip``: open_clip_train.main with JEST (see the package's docstring)."""

import sys

from . import main

sys.exit(main())
