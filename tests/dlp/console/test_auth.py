"""Login, sessions, CSRF, throttling and security headers against the real console over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from consolekit import PASSWORD, ConsoleUnderTest, csrf_of, make_console

from dlp.console.auth import LoginThrottle
from dlp.inspect import Inspector


def test_login_rotates_the_session_and_sets_strict_cookie_flags(console: ConsoleUnderTest) -> None:
    b = console.browser()
    page = b.get("/login")
    assert page.status_code == 200
    anonymous_id = b.client.cookies["dlp_session"]
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # secure_cookies is off by default (plain http on loopback)
    response = b.post("/login", {"username": "anna", "password": PASSWORD, "next": "/incidents?status=all"})
    assert response.status_code == 303 and response.headers["location"] == "/incidents?status=all"
    assert b.client.cookies["dlp_session"] != anonymous_id
    # The pre-login id is dead: a fixated session cannot ride on the login.
    stale = console.browser()
    stale.client.cookies.set("dlp_session", anonymous_id)
    assert stale.get("/incidents").status_code == 303
    records = console.store.audit_records(action="login")
    assert [(r.actor, r.detail.split()[0]) for r in records] == [("anna", "client=127.0.0.1")]


def test_login_refuses_wrong_passwords_unknown_and_disabled_users(console: ConsoleUnderTest) -> None:
    b = console.browser()
    b.get("/login")
    assert b.post("/login", {"username": "anna", "password": "wrong password!!"}).status_code == 401
    assert b.post("/login", {"username": "nobody", "password": PASSWORD}).status_code == 401
    console.users.set_disabled("vera", True)
    assert b.post("/login", {"username": "vera", "password": PASSWORD}).status_code == 401
    assert "Wrong user name or password" in b.post("/login", {"username": "anna", "password": "x"}).text
    failed = console.store.audit_records(action="login_failed")
    assert [r.actor for r in failed] == ["anna", "console", "vera", "anna"]
    assert "unknown user" in failed[1].detail and "nobody" not in failed[1].detail


def test_login_needs_the_csrf_token_of_its_session(console: ConsoleUnderTest) -> None:
    b = console.browser()
    b.get("/login")
    assert b.post("/login", {"username": "anna", "password": PASSWORD}, csrf=False).status_code == 403
    assert b.post("/login", {"username": "anna", "password": PASSWORD, "csrf_token": "forged"}).status_code == 403
    other = console.browser()
    other.get("/login")
    # A token from another session does not work with this cookie.
    assert b.post("/login", {"username": "anna", "password": PASSWORD, "csrf_token": other.csrf}).status_code == 403
    # Cross-site form posts are refused even with a valid token.
    response = b.post("/login", {"username": "anna", "password": PASSWORD},
                      headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    response = b.post("/login", {"username": "anna", "password": PASSWORD}, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert b.post("/login", {"username": "anna", "password": PASSWORD}).status_code == 303


def test_every_form_post_needs_the_csrf_token(console: ConsoleUnderTest) -> None:
    iid = console.record()
    analyst = console.login("anna")
    for path, form in ((f"/incidents/{iid}/delete", {"reason": "x"}), (f"/incidents/{iid}/comment", {"text": "x"}),
                       ("/incidents/bulk", {"operation": "delete", "reason": "x", "ids": iid}), ("/logout", {})):
        assert analyst.post(path, form, csrf=False).status_code == 403, path
        assert analyst.post(path, {**form, "csrf_token": "x" * 43}).status_code == 403, path
    detail = console.store.get(iid)
    assert detail.summary.has_original and not detail.comments
    assert analyst.get("/incidents").status_code == 200  # still signed in


def test_login_throttling_per_account_and_per_address(console: ConsoleUnderTest) -> None:
    b = console.browser()
    b.get("/login")
    for _ in range(5):
        assert b.post("/login", {"username": "anna", "password": "not the password"}).status_code == 401
    response = b.post("/login", {"username": "anna", "password": "not the password"})
    assert response.status_code == 401  # the sixth failure starts the lock-out
    response = b.post("/login", {"username": "anna", "password": PASSWORD})
    assert response.status_code == 429 and "Too many failed sign-ins" in response.text
    assert console.store.audit_records(action="login_throttled")[-1].actor == "anna"
    # The address is locked too: another account from the same client waits as well.
    assert b.post("/login", {"username": "adam", "password": PASSWORD}).status_code == 429


def test_throttle_backoff_doubles_and_success_clears_the_account() -> None:
    throttle = LoginThrottle(free=2, window=60, max_lock=8)
    for _ in range(2):
        throttle.failed("user:a", "ip:1")
    assert throttle.wait_seconds("user:a") == 0
    throttle.failed("user:a", "ip:1")
    first = throttle.wait_seconds("user:a")
    throttle.failed("user:a", "ip:1")
    second = throttle.wait_seconds("user:a")
    assert 0 < first <= 1 and 1 < second <= 2
    for _ in range(10):
        throttle.failed("user:a", "ip:1")
    assert throttle.wait_seconds("ip:1") <= 8
    throttle.succeeded("user:a")
    assert throttle.wait_seconds("user:a") == 0 and throttle.wait_seconds("ip:1") > 0


def test_security_headers_and_no_store_on_every_page(console: ConsoleUnderTest) -> None:
    iid = console.record()
    admin = console.login("adam")
    for path in ("/", "/incidents", f"/incidents/{iid}", "/admin/users", "/login", "/nope"):
        r = admin.get(path)
        h = r.headers
        assert "default-src 'self'" in h["content-security-policy"]
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert "unsafe-inline" not in h["content-security-policy"]
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer" and h["cache-control"] == "no-store", path
        assert "server" not in h
    assert admin.get("/nope").status_code == 404
    assert "<script>" not in admin.get("/").text.replace('<script src="/static/console.js" defer></script>', "")


def test_logout_and_disable_and_password_change_end_sessions(console: ConsoleUnderTest) -> None:
    analyst = console.login("anna")
    assert analyst.post("/logout").status_code == 303
    assert analyst.get("/incidents").status_code == 303
    viewer = console.login("vera")
    console.users.set_disabled("vera", True)  # as `dlp users disable` does from another process
    assert viewer.get("/incidents").status_code == 303
    admin = console.login("adam")
    other_admin_session = console.login("adam")
    console.users.set_password("adam", "a brand new password")
    assert admin.get("/incidents").status_code == 303
    assert other_admin_session.get("/").status_code == 303


def test_oversized_bodies_are_refused(console: ConsoleUnderTest) -> None:
    analyst = console.login("anna")
    iid = console.record()
    response = analyst.post(f"/incidents/{iid}/comment", {"text": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413


@pytest.fixture
def secure_console(tmp_path: Path, inspector: Inspector) -> Iterator[ConsoleUnderTest]:
    yield from make_console(tmp_path / "secure", inspector, secure_cookies=True, session_minutes=1)


def test_secure_cookies_use_the_host_prefix(secure_console: ConsoleUnderTest) -> None:
    b = secure_console.browser()
    response = b.get("/login")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-dlp_session=") and "Secure" in cookie and "Max-Age=1800" in cookie
    assert response.headers["strict-transport-security"].startswith("max-age=")
    csrf_of(response.text)
