"""The README's main job: `rdsiam-emulator demo` connects with real tokens, explains a refusal."""

import subprocess
import sys


def test_demo_connects_and_explains_expiry():
    proc = subprocess.run(
        [sys.executable, "-m", "rdsiam_emulator.cli", "demo", "--backend", "local"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.count("connected with an IAM token over verified TLS as app_user") == 2
    assert 'FATAL:  PAM authentication failed for user "app_user"' in out
    assert "ERROR 1045: Access denied for user 'app_user'@'127.0.0.1' (using password: YES)" in out
    assert out.count("the emulator records: expired [ExpiredToken]") == 2
    assert "UNEXPECTED" not in out


def test_demo_on_an_external_server():
    """--backend external with --postgres-url: the demo runs against a server it did not start."""
    from rdsiam_emulator.backends import BackendSpec, start_backend

    # TCP (opt-in): the demo is given a TCP URL, as for a server someone else runs
    server = start_backend(BackendSpec("postgres", provider="local", listen_tcp=True))
    try:
        server.admin_execute("CREATE ROLE demo_super SUPERUSER LOGIN PASSWORD 'demo-pw'")
        url = f"postgresql://demo_super:demo-pw@127.0.0.1:{server.port}/postgres"
        proc = subprocess.run(
            [sys.executable, "-m", "rdsiam_emulator.cli", "demo", "--backend", "external",
             "--engine", "postgres", "--postgres-url", url],
            capture_output=True, text=True, timeout=240, check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"via external:127.0.0.1:{server.port}" in proc.stdout
        assert "connected with an IAM token over verified TLS as app_user" in proc.stdout
        assert "the emulator records: expired [ExpiredToken]" in proc.stdout
    finally:
        server.stop()


def test_demo_fails_when_an_expired_token_is_accepted(monkeypatch, capsys):
    """Fault injection: the clock no longer moves, so the 'expired' token is still valid and
    is accepted; the demo must say so and exit non-zero (it promises exit 0 only when every step
    worked)."""
    from rdsiam_emulator import cli
    from rdsiam_emulator.clock import OffsetClock

    monkeypatch.setattr(OffsetClock, "advance", lambda self, **_: None)
    code = cli.main(["demo", "--backend", "local", "--engine", "postgres"])
    out = capsys.readouterr().out
    assert "UNEXPECTED: an expired token was accepted" in out
    assert code == 1
