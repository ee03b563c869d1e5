"""What runs one task, on any engine: ``run`` (``python -m pymw_admin.worker.run``) and the
``scripting`` helpers a script task calls. Only the wire format below it, so a worker never pays
for the master or the engines.
"""

# A persistent worker builds each large shared blob it is sent as one big ``bytes`` object; most of
# that time is page faults. Its interface starts it with transparent huge pages for glibc's large
# allocations (glibc 2.35 or later, THP "madvise" mode; ignored elsewhere), which makes a 40 MB
# blob land in about half the time. The worker takes the setting out of its environment
# again, so what a task starts does not inherit it; a GLIBC_TUNABLES of the user's own is left as
# it is.
WORKER_TUNABLES = "glibc.malloc.hugetlb=1"
ADDED_TUNABLES_ENV = "PYMW_ADDED_TUNABLES"  # set when the interface added WORKER_TUNABLES
