"""The status page ``/_rdsiam/`` in headless Chromium (Debian's, driven by Playwright from PyPI):
``serve`` runs as a subprocess; the page must show the instance, its snippets and the principals'
access, then a failed login made with a real driver must appear without a reload. A screenshot
goes to $RDSIAM_ARTIFACTS (default ``artifacts/``; docs/testing.md)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from serve_proc import ACCOUNT, APP_KEY, APP_SECRET, DNS_LABEL, REGION, Serve, free_port

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INTRUDER_KEY = "AKIAEXAMPLEINTRUDER1"
INTRUDER_SECRET = "intruder-secret-access-key-0001"
HOSTILE = '<img src=x onerror="window.pwned=1">'
CONNECT_APP_USER = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "rds-db:connect",
    "Resource": f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:*/app_user"}]})


def artifacts_dir() -> Path:
    path = Path(os.environ.get("RDSIAM_ARTIFACTS") or ROOT / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("serve-status")
    port = free_port()
    config = f"""
[server]
port = {port}
region = "{REGION}"
account_id = "{ACCOUNT}"
dns_label = "{DNS_LABEL}"

[[instances]]
identifier = "orders"
engine = "postgres"
iam_db_users = ["app_user"]

[[iam.users]]
name = "app"
inline_policies = {{ connect = '{CONNECT_APP_USER}' }}
access_keys = [{{ access_key_id = "{APP_KEY}", secret_access_key = "{APP_SECRET}" }}]

[[iam.users]]
name = "intruder"
access_keys = [{{ access_key_id = "{INTRUDER_KEY}", secret_access_key = "{INTRUDER_SECRET}" }}]
"""
    serve = Serve(config, tmp)
    try:
        serve.wait_ready(port)
        yield serve
    finally:
        code = serve.stop()
        assert code == 0, serve.stderr()
        assert serve.stderr() == ""  # no warnings, tracebacks or request logs from the page


@pytest.mark.slow
def test_status_page_renders_and_shows_a_failed_login_live(server: Serve, tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file() or shutil.which("chromium") is None:
        pytest.fail("chromium is not installed: run scripts/bootstrap as root")
    from playwright.sync_api import expect, sync_playwright

    orders = server.instance("orders")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(server.get("/_rdsiam/ca.pem").content)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{server.url}/_rdsiam/")
            card = page.locator('.instance[data-instance="orders"]')
            expect(card.locator(".endpoint")).to_have_text(orders["host"])
            expect(card.locator(".port")).to_have_text(str(orders["port"]))
            expect(card.locator(".resource-id")).to_have_text(orders["resource_id"])
            expect(card.locator("dd.on")).to_have_text("on")
            # every language's snippet, with the real host, port and region filled in
            titles = card.locator(".tabs button")
            expect(titles).to_have_count(5)
            for key in ("psql", "python", "node", "java", "go"):
                card.locator(f'.tabs button[data-key="{key}"]').click()
                code = card.locator(f'pre[data-snippet="{key}"]')
                expect(code).to_contain_text(orders["host"])
                expect(code).to_contain_text(str(orders["port"]))
                expect(code).to_contain_text(REGION)
            card.locator('.tabs button[data-key="psql"]').click()
            expect(card.locator("pre")).to_contain_text("sslmode=verify-full")
            # the principals' access, decided by the evaluator
            app_row = page.locator(f'tr[data-principal="arn:aws:iam::{ACCOUNT}:user/app"]')
            expect(app_row).to_contain_text("orders: app_user")
            intruder = page.locator(f'tr[data-principal="arn:aws:iam::{ACCOUNT}:user/intruder"]')
            expect(intruder).to_contain_text("nothing")
            expect(page.locator("#live")).to_contain_text("live")
            rows_before = page.locator("#events tbody tr").count()

            # a failed login with a real driver: intruder's token is valid but not allowed
            token = server.client("rds", INTRUDER_KEY, INTRUDER_SECRET).generate_db_auth_token(
                DBHostname=orders["host"], Port=orders["port"], DBUsername="app_user",
                Region=REGION)
            with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
                psycopg.connect(host=orders["host"], hostaddr=orders["address"],
                                port=orders["port"], user="app_user", password=token,
                                dbname="app", sslmode="verify-full", sslrootcert=str(ca),
                                connect_timeout=20)
            # a login as a user name that is HTML: shown as text, never run
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(host=orders["host"], hostaddr=orders["address"],
                                port=orders["port"], user=HOSTILE, password=token, dbname="app",
                                sslmode="verify-full", sslrootcert=str(ca), connect_timeout=20)

            # no reload: the rows arrive through the page's polling
            denied = page.locator("#events tbody tr.deny", has_text="not_authorized")
            expect(denied).to_have_count(1, timeout=15_000)
            expect(denied.locator(".db-user")).to_have_text("app_user")
            expect(denied.locator(".reason")).to_have_text("not_authorized [NotAuthorized]")
            expect(denied.locator(".detail")).to_contain_text(
                f"arn:aws:iam::{ACCOUNT}:user/intruder")
            expect(denied.locator(".hint")).to_contain_text("hint: attach a policy")
            hostile = page.locator("#events tbody tr .db-user", has_text=HOSTILE)
            expect(hostile).to_have_count(1, timeout=15_000)
            assert page.locator("#events img").count() == 0
            assert page.evaluate("window.pwned") is None
            assert page.locator("#events tbody tr").count() >= rows_before + 2
            assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
            shot = artifacts_dir() / "status-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert errors == []
        finally:
            browser.close()
