"""`python -m byoldyn.cli ...`: the `byoldyn` command."""

import sys

from . import main

sys.exit(main())
