import sys

from carlib.cli import main

sys.exit(main())
