"""What the engines whose tasks outlive the master share (HTCondor, BOINC): one master per state
directory (``state_lock``), an append-only journal of what was submitted and collected
(``journal``), and the program a remote job runs (``worker_program``); for BOINC alone, what the
deployed app versions understand (``app_features``) and the task key (``task_signing``).
"""
