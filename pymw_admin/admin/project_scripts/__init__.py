"""Scripts deploy-app installs into a BOINC project's ``bin/``, run there by BOINC's daemons.

They use only POSIX sh or the standard library (the server's own python3 runs them, without
pymw-admin):

- ``pymw_assimilator.sh``, installed as ``bin/pymw_assimilator``: called by ``script_assimilator
  --script pymw_assimilator`` once per work unit; moves each canonical result, keyed by
  work-unit name, where the BOINC interface finds it (one mv: no Python start-up per result),
  and hands failed work units to
- ``pymw_assimilator.py``, installed as ``bin/pymw_assimilate_error``: writes the error record
  with the stderr the hosts reported (from the database).
- ``pymw_compare.py``: called by ``script_validator --compare_script pymw_compare``; with
  replication, two results agree when their outcome and value agree (timings and host differ).
  It imports ``pymw_untrusted.py`` from beside itself: deploy-app installs the master's bounded
  decoder (``pymw_admin.wire.untrusted``) under that name; the assimilator imports
  ``pymw_boinc_contract.py`` (``pymw_admin.wire.boinc_contract``: names, layout, error masks).
"""

from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent
ASSIMILATOR = "pymw_assimilator"
ERROR_FILER = "pymw_assimilate_error"  # the name the assimilator calls it by, next to it
COMPARER = "pymw_compare"
UNTRUSTED_MODULE = "pymw_untrusted.py"  # pymw_admin.wire.untrusted, which the comparer imports
CONTRACT_MODULE = "pymw_boinc_contract.py"  # pymw_admin.wire.boinc_contract, for the assimilator
SOURCES = {  # installed name -> source file here
    ASSIMILATOR: "pymw_assimilator.sh",
    ERROR_FILER: "pymw_assimilator.py",
    COMPARER: "pymw_compare.py",
}


def script_source(name: str) -> str:
    return (SCRIPTS_DIR / SOURCES[name]).read_text()
