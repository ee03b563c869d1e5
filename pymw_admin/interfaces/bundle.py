"""``-i bundle``: tasks through the built PyBOINC bundle in BOINC-like slot directories.

The implementation lives with the bundles (pymw_admin.bundles.rehearsal); this module is the
registry's entry point, like every other interface's.
"""

from pymw_admin.bundles.rehearsal import BundleInterface, build

__all__ = ["BundleInterface", "build"]
