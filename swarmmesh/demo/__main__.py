"""``python -m swarmmesh.demo`` - same as ``swarmmesh demo``."""

import sys

from swarmmesh.demo.run import main

sys.exit(main())
