"""The bundle's main program (PyInstaller's entry script); the logic is pymw_admin.bundles.entry."""

import sys

from pymw_admin.bundles.entry import main

sys.exit(main())
