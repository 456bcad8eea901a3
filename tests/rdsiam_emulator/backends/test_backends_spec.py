from __future__ import annotations

import pytest

from rdsiam_emulator.backends import ADMIN_USER, BackendSpec


def test_defaults_follow_rds() -> None:
    assert BackendSpec("postgres").master_user == "postgres"
    assert BackendSpec("mysql").master_user == "admin"
    assert BackendSpec("mysql", master_username="boss").master_user == "boss"
    assert BackendSpec("postgres").provider == "auto"


def test_images_default_and_overrides() -> None:
    env: dict[str, str] = {}
    assert BackendSpec("postgres").resolved_image(env) == "postgres:16"
    assert BackendSpec("mysql").resolved_image(env) == "mysql:8.0"
    assert BackendSpec("mysql", image="mariadb").resolved_image(env) == "mariadb:11"
    assert BackendSpec("postgres", version="17").resolved_image(env) == "postgres:17"
    assert BackendSpec("postgres", image="my/pg:1").resolved_image(env) == "my/pg:1"
    env = {"RDSIAM_POSTGRES_IMAGE": "localhost/pg:15", "RDSIAM_MARIADB_IMAGE": "localhost/mdb:1"}
    assert BackendSpec("postgres").resolved_image(env) == "localhost/pg:15"
    assert BackendSpec("mysql", image="mariadb").resolved_image(env) == "localhost/mdb:1"
    # an explicit image always wins over the environment
    assert BackendSpec("postgres", image="postgres:16").resolved_image(env) == "postgres:16"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "oracle"}, "engine must be"),
        ({"engine": "postgres", "provider": "cloud"}, "provider must be"),
        ({"engine": "postgres", "provider": "external"}, "external_admin_url"),
        ({"engine": "postgres", "master_username": ADMIN_USER}, "reserved"),
        ({"engine": "mysql", "dbname": ""}, "dbname"),
    ],
)
def test_invalid_specs_are_rejected(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackendSpec(**kwargs)  # type: ignore[arg-type]
