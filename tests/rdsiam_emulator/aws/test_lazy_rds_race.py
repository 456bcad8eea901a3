"""A registration deferred by ``aws.rds.register_when_imported`` keeps an IAM flag change made
while moto's RDS is being imported by another thread (after ``moto.rds`` is in sys.modules, before
the deferred registration ran). Found by a break-it review; runs in a child process so that
``moto.rds`` is not imported yet."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys, threading, time
    from wrapt import register_post_import_hook
    from rdsiam_emulator.aws import rds as moto_rds
    assert "moto.rds" not in sys.modules

    entered = threading.Event()
    def slow_hook(_m):            # stands in for any earlier moto.rds hook (the patches' _apply)
        entered.set()
        time.sleep(1.0)
    register_post_import_hook(slow_hook, "moto.rds")

    reg = moto_rds.RdsRegistration(
        instance_id="db1", engine="postgres", region="us-east-1", account_id="123456789012",
        address="db1.x.us-east-1.rds.amazonaws.com", port=5432,
        resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXYZ", master_username="admin", dbname="postgres",
        iam_enabled=True)
    moto_rds.register_when_imported(reg)

    t = threading.Thread(target=lambda: __import__("moto.rds"))  # e.g. describe_db_instances
    t.start()
    entered.wait(60)
    # the test turns IAM off (EmulatedInstance.set_iam_enabled passes missing_ok=True)
    moto_rds.set_iam_enabled("123456789012", "us-east-1", "db1", False, missing_ok=True)
    t.join()
    from moto.rds.models import rds_backends
    db = rds_backends["123456789012"]["us-east-1"].databases["db1"]
    print("IAM_ENABLED", db.enable_iam_database_authentication)
""")


def test_iam_flag_change_during_moto_rds_import_is_kept() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "IAM_ENABLED False" in out.stdout, out.stdout + out.stderr[-2000:]
