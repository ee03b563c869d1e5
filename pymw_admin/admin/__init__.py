"""The BOINC server side: the transport (``remote``), which project where (``config``,
``target``), the facts -> decide -> apply -> verify engine (``plan``), init-project's steps
(``server/``), deploy-app's steps (``apps/``), master scripts run on the server (``runs``),
``status``, BOINC's XML files (``boincxml``) and the scripts installed beside the project
(``project_scripts``).
"""
