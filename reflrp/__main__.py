import sys

from reflrp.cli import main

sys.exit(main())
