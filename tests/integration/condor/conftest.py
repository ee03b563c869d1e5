"""Fixtures for the condor interface: the testbed's personal pool and the project's bundle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

htcondor2 = pytest.importorskip("htcondor2", reason="needs pymw-admin[condor]")

from testbed import condor as condor_testbed  # noqa: E402

pytestmark = pytest.mark.condor


@pytest.fixture(scope="session")
def pool() -> Iterator[condor_testbed.Pool]:
    """The running pool; the bindings (here and in subprocess masters) use its client config."""
    pool = condor_testbed.up()
    saved = os.environ.get("CONDOR_CONFIG")
    os.environ["CONDOR_CONFIG"] = str(pool.condor_config)
    htcondor2.reload_config()
    yield pool
    if saved is None:
        os.environ.pop("CONDOR_CONFIG", None)
    else:
        os.environ["CONDOR_CONFIG"] = saved
    htcondor2.reload_config()


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The project's PyBOINC bundle (pyboinc_bundles' recipe, built once into the cache)."""
    from testbed import bundle as bundle_testbed

    return bundle_testbed.up().root


@pytest.fixture
def schedd(pool: condor_testbed.Pool) -> htcondor2.Schedd:
    return htcondor2.Schedd()
