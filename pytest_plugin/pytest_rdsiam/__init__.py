"""The ``rdsiam`` pytest plugin: ``pytest --rdsiam-emulator`` and the ``rds_iam_db`` fixture.

The fixture contract is in docs/pytest.md; the plugin module is ``pytest_rdsiam.plugin``.
"""
