"""The PyInstaller recipe of this platform's bundle, shipped inside the package (package data) so
``pymw-admin bundle build`` works from any install and any directory: ``pymw-worker.spec`` and the
entry script ``pymw_worker.py``. Nothing here is imported; ``bundles.build`` passes the paths."""
