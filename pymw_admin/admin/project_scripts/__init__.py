"""Scripts deploy-app installs into a BOINC project's ``bin/``, run there by BOINC's daemons.

They use only the standard library (the server's own python3 runs them, without pymw-admin):

- ``pymw_assimilator.py``, installed as ``bin/pymw_assimilator``: the app's assimilator daemon
  (``pymw_assimilator --app APP``, started by ``bin/start``). It files the app's finished work
  units a batch at a time, as BOINC's assimilator enumerates them: each canonical result moved,
  keyed by work-unit name, where the BOINC interface finds it; each failed work unit an error
  record with the stderr its hosts reported. script_assimilator's per-work-unit calls (how
  earlier deploys ran it) still work.
- ``pymw_compare.py``: called by ``script_validator --compare_script pymw_compare``; with
  replication, two results agree when their outcome and value agree (timings and host differ).
  It imports ``pymw_untrusted.py`` from beside itself: deploy-app installs the master's bounded
  decoder (``pymw_admin.wire.untrusted``) under that name; the assimilator imports
  ``pymw_boinc_contract.py`` (``pymw_admin.wire.boinc_contract``: names, layout, error masks).
"""

from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent
ASSIMILATOR = "pymw_assimilator"
COMPARER = "pymw_compare"
UNTRUSTED_MODULE = "pymw_untrusted.py"  # pymw_admin.wire.untrusted, which the comparer imports
CONTRACT_MODULE = "pymw_boinc_contract.py"  # pymw_admin.wire.boinc_contract, for the assimilator
SOURCES = {  # installed name -> source file here
    ASSIMILATOR: "pymw_assimilator.py",
    COMPARER: "pymw_compare.py",
}


def script_source(name: str) -> str:
    return (SCRIPTS_DIR / SOURCES[name]).read_text()
