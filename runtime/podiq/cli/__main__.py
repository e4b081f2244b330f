import sys

from podiq.cli import main

sys.exit(main())
