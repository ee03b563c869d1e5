"""The BOINC contract: the names and layouts that the master's BOINC interface, the bundle on a
volunteer's machine, deploy-app's templates, status and the server's scripts must agree on.

Standard library only and importing nothing of pymw_admin: deploy-app installs this very file
beside the project scripts as ``pymw_boinc_contract.py``, and they import it from there.
"""

from __future__ import annotations

import re

APP_NAME = "pymw"  # the app deploy-app registers unless told another name
TASK_NAME = "pymw_task"  # logical (open) names in the work-unit and result templates
RESULT_NAME = "pymw_result"
# the task key's public half in every app version (open name), and both halves on the server,
# below the project directory (keys/ is not served by the web server)
TASK_KEY_NAME = "pymw_task_key"
TASK_KEY_PRIVATE = ("keys", "pymw_task_private.pem")
TASK_KEY_PUBLIC = ("keys", "pymw_task_public.pem")

# below the project directory: where the assimilator files results, where masters journal
RESULTS_DIR = ("pymw", "results")
MASTERS_DIR = ("pymw", "masters")
TASK_SUFFIX = ".task"  # download/pymw_tasks/TAG/WU_NAME.task (older masters: the fan-out)
# a small task travels in its work unit's command line instead (``--pymw-task=BASE64`` of the
# signed task file): no file to stage, none for the client to download. create_work reads a
# stdin line of at most 4,095 bytes, so the line's other words leave room for this much.
INLINE_TASK_OPTION = "--pymw-task="
INLINE_TASK_MAX = 2400  # bytes of a signed task file (3,200 characters of base64)
# what a bundle's worker understands beyond the task file, as its manifest lists it and deploy-app
# writes it beside each app version (FEATURES_FILE, a dot file update_versions skips); a master
# inlines tasks only when every platform's newest version of the app says "inline-task"
INLINE_TASK_FEATURE = "inline-task"
# and sends a large data file as a shared blob (a file beside the task, named by its digest)
# only when every one says "shared-data-files"
SHARED_FILES_FEATURE = "shared-data-files"
WORKER_FEATURES = (INLINE_TASK_FEATURE, SHARED_FILES_FEATURE)
FEATURES_FILE = ".pymw-features"
RESULT_SUFFIX = ".result"  # RESULTS_DIR/WU_NAME.result: the canonical result record
ERROR_SUFFIX = ".error"  # RESULTS_DIR/WU_NAME.error: JSON, BOINC gave the work unit up
# OUTCOMES_DIR/APP.json: what the app's filed results said, tallied by the assimilator per run
# tag (tasks that returned, tasks that raised by exception type with the newest examples); status
# shows it
OUTCOMES_DIR = ("pymw", "outcomes")
OUTCOMES_SUFFIX = ".json"
OUTCOMES_FORMAT = 1

# how the BOINC interface names a work unit: pymw_TAG_TASK, TASK the task's id (8 hex digits, a
# number) with "_" for "-"; the tag is the master's (-a tag=NAME or its script's name)
WU_NAME = re.compile(r"^pymw_(?P<tag>[A-Za-z0-9_]+)_[0-9a-f]{8}_[0-9]+$")


def run_tag(wu_name: str) -> str:
    """The tag of the master that made the work unit; "" for a name no master of ours made."""
    match = WU_NAME.match(wu_name)
    return match.group("tag") if match else ""

# a work unit's error_mask bits (BOINC's WU_ERROR_*), in words
WU_ERRORS = {
    1: "could not send a result",
    2: "too many error results",
    4: "too many success results without agreement",
    8: "too many total results",
    16: "cancelled",
    32: "no canonical result",
}


def describe_error_mask(mask: int) -> str:
    """``error_mask`` spelled out, e.g. "too many total results, cancelled"."""
    parts = [text for bit, text in WU_ERRORS.items() if mask & bit]
    return ", ".join(parts) or f"error mask {mask}"
