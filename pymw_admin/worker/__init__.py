"""What runs one task, on any engine: ``run`` (``python -m pymw_admin.worker.run``) and the
``scripting`` helpers a script task calls. Only the wire format below it, so a worker never pays
for the master or the engines.
"""
