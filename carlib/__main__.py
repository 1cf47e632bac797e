import sys

from carlib.apps.cli import main

sys.exit(main())
