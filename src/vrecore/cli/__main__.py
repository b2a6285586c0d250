"""`python -m vrecore.cli`: the `vre` command."""
import sys

from vrecore.cli.dispatch import main

sys.exit(main())
