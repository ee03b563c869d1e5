"""The real engines the test suite runs against, provisioned on this machine, idempotently.

Each module is one engine with ``up()`` (idempotent; returns what the tests need), ``down()`` and
``status()``. What they build is cached outside the repository (``testbed.cache.CACHE``) and reused.
"""
