"""freezegun and the emulator's clock together: freezing the app's time does not freeze the
emulator's (RDS's clock is not the app's); the fixture's clock still jumps ahead. Keep asyncio's
monotonic time real (``real_asyncio=True``) so the endpoint's event loop keeps its timers."""

import psycopg
import pytest
from freezegun import freeze_time


def test_frozen_app_time_and_virtual_clock(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")
    session = rds_iam_db.iam_session("app_user")
    with freeze_time("2031-05-01 09:00:00", real_asyncio=True):
        token = rds_iam_db.generate_token("app_user", session)
        # boto3 signs at the emulator's time, not at the app's frozen 2031
        assert rds_iam_db.clock.now().strftime("X-Amz-Date=%Y%m%d") in token
        psycopg.connect(**rds_iam_db.connect_kwargs("app_user", token)).close()
        rds_iam_db.clock.advance(minutes=15, seconds=1)
        with pytest.raises(psycopg.OperationalError):  # replayed after expiry
            psycopg.connect(**rds_iam_db.connect_kwargs("app_user", token))
    assert rds_iam_db.auth_events[-1].reason == "expired"
