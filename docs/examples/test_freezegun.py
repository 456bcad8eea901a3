"""freezegun and the emulator's clock together: freezegun sets the base time, the fixture's
clock jumps from it. Keep asyncio's monotonic time real (``real_asyncio=True``) so the endpoint's
event loop keeps its timers."""

import psycopg
import pytest
from freezegun import freeze_time


def test_frozen_time_and_virtual_clock(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")
    session = rds_iam_db.iam_session("app_user")
    with freeze_time("2031-05-01 09:00:00", real_asyncio=True):
        token = rds_iam_db.generate_token("app_user", session)
        assert "X-Amz-Date=20310501T090000Z" in token
        psycopg.connect(**rds_iam_db.connect_kwargs("app_user", token)).close()
        rds_iam_db.clock.advance(minutes=15, seconds=1)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(**rds_iam_db.connect_kwargs("app_user", token))
    assert rds_iam_db.auth_events[-1].reason == "expired"
