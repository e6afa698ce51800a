import sys

from churnstream.cli import main

sys.exit(main())
