"""A SQLAlchemy pool that mints a token per new connection keeps working past 15 minutes;
one that baked a token into its URL does not. The virtual clock makes this a one-second test."""

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event


def make_engine(db, session):
    engine = sa.create_engine(
        f"postgresql+psycopg://app_user@{db.host}:{db.port}/{db.dbname}",
        connect_args={"sslmode": "verify-full", "sslrootcert": db.ca_bundle},
        pool_pre_ping=True,
    )

    @event.listens_for(engine, "do_connect")
    def provide_token(dialect, conn_rec, cargs, cparams):
        cparams["password"] = session.client("rds").generate_db_auth_token(
            DBHostname=db.host, Port=db.port, DBUsername="app_user")

    return engine


def test_pool_refreshes_tokens(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")
    engine = make_engine(rds_iam_db, rds_iam_db.iam_session("app_user"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("select current_user")).scalar() == "app_user"
    rds_iam_db.clock.advance(minutes=20)        # every token minted so far has expired
    engine.dispose()                            # force new connections
    with engine.connect() as conn:               # a fresh token is minted for it
        assert conn.execute(sa.text("select 1")).scalar() == 1
    assert [e.outcome for e in rds_iam_db.auth_events if e.method == "iam"] == ["allow", "allow"]


def test_static_token_breaks_after_expiry(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")
    token = rds_iam_db.generate_token("app_user", rds_iam_db.iam_session("app_user"))
    engine = sa.create_engine(
        "postgresql+psycopg://", connect_args=rds_iam_db.connect_kwargs("app_user", token))
    with engine.connect():
        pass
    rds_iam_db.clock.advance(minutes=16)
    engine.dispose()
    with pytest.raises(sa.exc.OperationalError) as info:
        engine.connect()
    assert isinstance(info.value.orig, psycopg.OperationalError)
    assert rds_iam_db.auth_events[-1].reason == "expired"
