"""pymw-admin: Python master-worker computing on local cores, MPI, HTCondor and BOINC.

The runtime (``pymw_admin.runtime``) is the PyMW master API; ``pymw_admin.interfaces`` holds one
module per engine; the ``pymw-admin`` command provisions and runs BOINC projects.
"""

__version__ = "0.1.0"
