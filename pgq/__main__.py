"""`python -m pgq` is the `pgq` command."""

import sys

from pgq.cli import main

sys.exit(main())
