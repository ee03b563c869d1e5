"""The optional C accelerator of ``pymw_admin.wire.untrusted``'s opcode scan; the rest of the
build is in pyproject.toml. ``optional=True``: without a compiler the package still installs, and
the module's pure-Python scan runs instead."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pymw_admin.wire._plainscan", ["pymw_admin/wire/_plainscan.c"],
                             optional=True)])
