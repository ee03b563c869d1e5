"""Apps on a BOINC project: what ``pymw-admin deploy-app`` does, one module a concern.

Each concern is a provisioning :class:`~pymw_admin.admin.plan.Step` (facts -> decide -> apply ->
verify), so a re-run with nothing changed changes nothing and ``--dry-run`` prints the decisions:

- ``register``: the app in project.xml and the database (``bin/xadd``);
- ``scripts``: ``pymw_assimilator`` and ``pymw_compare`` in ``PROJECT/bin``, the work-unit and
  result templates in ``PROJECT/templates``;
- ``versions``: one app version per bundle (one per BOINC platform), signed here or on the server,
  installed with ``bin/update_versions``; a changed bundle becomes a new version number;
- ``daemons``: the validator and assimilator in config.xml, started or restarted.
"""
