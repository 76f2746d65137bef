"""`python -m livefuse` runs the same CLI as the `livefuse` console script."""

import sys

from livefuse.cli import main

sys.exit(main())
