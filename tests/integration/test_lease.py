"""The fault lease after a crash: a dead holder on this host is released by reconcile (what
every gameday command does first); a live holder, or one on another host, is left to expire."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gameday.engine.lease import FAULT_LEASE, holder_gone, holder_id
from gameday.engine.reconcile import reconcile
from gameday.store import Store

pytestmark = pytest.mark.integration

TAKE_AND_DIE = textwrap.dedent("""
    import os, sys
    from datetime import UTC, datetime, timedelta
    from gameday.engine.lease import FAULT_LEASE, holder_id
    from gameday.store import Store
    with Store.open(sys.argv[1]) as store:
        assert store.lease_acquire(FAULT_LEASE, holder_id("crashing run"), timedelta(minutes=5),
                                   datetime.now(UTC))
    os._exit(0)  # gone without releasing, like a kill -9
""")


def test_a_dead_holders_lease_is_released_by_reconcile(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    subprocess.run([sys.executable, "-c", TAKE_AND_DIE, url], check=True, timeout=60)
    with Store.open(url) as store:
        lease = store.lease_get(FAULT_LEASE)
        assert lease is not None and lease.holder.startswith("crashing run @")
        assert holder_gone(lease.holder)
        assert reconcile(store).lease_released == lease.holder
        assert store.lease_get(FAULT_LEASE) is None


def test_a_live_or_remote_holder_keeps_its_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gameday.db'}"
    now = datetime.now(UTC)
    with Store.open(url) as store:
        mine = holder_id("this test")
        assert store.lease_acquire(FAULT_LEASE, mine, timedelta(minutes=5), now)
        assert not holder_gone(mine) and reconcile(store).lease_released is None
        assert store.lease_get(FAULT_LEASE).holder == mine  # type: ignore[union-attr]
        store.lease_release(FAULT_LEASE, mine)
        remote = "scheduler-b @another-host pid 1 start 1"  # a replica elsewhere: only expiry
        assert store.lease_acquire(FAULT_LEASE, remote, timedelta(minutes=5), now)
        assert not holder_gone(remote) and reconcile(store).lease_released is None
        assert not holder_gone("free text, not a holder id")
