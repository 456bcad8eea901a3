def test_container_backend_without_the_extra(rds_iam_db):
    raise AssertionError("unreachable: the fixture must fail without the [containers] extra")
