import sys

from hdrsyn.cli import main

sys.exit(main())
