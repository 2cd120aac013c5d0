"""A throwaway PostgreSQL 15 cluster, its workload and the captures of its slots, once per session."""

from __future__ import annotations

import os

import pytest

from . import harness


@pytest.fixture(scope="session")
def pg_capture(tmp_path_factory: pytest.TempPathFactory) -> harness.PgCapture:
    """Run the workload on a new cluster and capture every slot (skips where PostgreSQL is absent,
    fails instead under LOGTOOL_REQUIRE_POSTGRES=1)."""
    why = harness.missing()
    if why:
        if os.environ.get("LOGTOOL_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LOGTOOL_REQUIRE_POSTGRES=1 but {why}")
        pytest.skip(why)
    return harness.run_capture(tmp_path_factory.mktemp("pg-capture"))
