"""Provisioning a BOINC server: one module a concern, each step facts -> decide -> apply -> verify.

``admin.plan.run_plan(host, spec)`` runs the steps of ``provision.STEPS`` in order. A step's
``decide`` is a pure function of the facts it read and the wanted
:class:`~pymw_admin.admin.server.spec.ProjectSpec`; a converged host decides no actions, which is
how re-runs and ``--dry-run`` stay honest.
"""
