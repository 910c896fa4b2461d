"""``python -m probelog_devstack``: start the dev stack and run the demo against it."""

import sys

from probelog_devstack.stack import main

sys.exit(main())
