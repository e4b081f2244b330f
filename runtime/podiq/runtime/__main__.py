import sys

from podiq.runtime import main

sys.exit(main())
