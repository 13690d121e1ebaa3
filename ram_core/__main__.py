import sys

from ram_core.cli import main

sys.exit(main())
