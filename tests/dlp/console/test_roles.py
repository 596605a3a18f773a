"""H2: the role matrix. viewer / analyst / admin against view / full content / download / release / delete
and the admin pages: only permitted actions succeed, every refusal is a 403 page, audited, with no effect."""

from __future__ import annotations

import pytest
from consolekit import CANARIES, ConsoleUnderTest

from dlp.store import Status

ROLES = {"vera": "viewer", "anna": "analyst", "adam": "admin"}

# (method, path template, form, lowest role allowed)
MATRIX = [
    ("GET", "/", {}, "viewer"),
    ("GET", "/incidents", {}, "viewer"),
    ("GET", "/incidents/{iid}", {}, "viewer"),
    ("POST", "/incidents/{iid}/comment", {"text": "looked at it"}, "analyst"),
    ("POST", "/incidents/{iid}/assign", {"assignee": "anna"}, "analyst"),
    ("POST", "/incidents/{iid}/confirm", {"reason": "real card"}, "analyst"),
    ("POST", "/incidents/bulk", {"operation": "in_review", "reason": "triage", "ids": "{iid}"}, "analyst"),
    ("POST", "/incidents/{iid}/reveal", {"reason": "legal hold"}, "admin"),
    ("POST", "/incidents/{iid}/download", {"reason": "legal hold"}, "admin"),
    ("POST", "/incidents/{iid}/delete", {"reason": "not needed"}, "analyst"),
    ("GET", "/admin/users", {}, "admin"),
    ("GET", "/admin/retention", {}, "admin"),
    ("GET", "/admin/audit", {}, "admin"),
    ("POST", "/admin/users", {"change": "add", "name": "newbie", "role": "viewer",
                              "password": "a long enough password"}, "admin"),
]
RANK = {"viewer": 0, "analyst": 1, "admin": 2}


@pytest.mark.parametrize("name", list(ROLES))
def test_role_matrix(console: ConsoleUnderTest, name: str) -> None:
    role = ROLES[name]
    browser = console.login(name)
    for method, template, form, needed in MATRIX:
        iid = console.record()  # a fresh held incident for every row: rows do not depend on each other
        path = template.format(iid=iid)
        data = {k: v.format(iid=iid) for k, v in form.items()}
        audit_before = len(console.store.audit_records(limit=100_000))
        response = browser.get(path) if method == "GET" else browser.post(path, data)
        allowed = RANK[role] >= RANK[needed]
        detail = console.store.get(iid)
        if allowed:
            assert response.status_code in (200, 303), (role, path, response.status_code)
            continue
        assert response.status_code == 403, (role, path, response.status_code)
        assert "Not allowed" in response.text and f"needs the {needed} role" in response.text
        # Refused: nothing changed, the original is intact, and the denial is in the audit log.
        assert detail.summary.status == Status.NEW and detail.summary.has_original
        assert not detail.comments and detail.summary.assignee == ""
        assert not any(c in response.text for c in CANARIES)
        records = console.store.audit_records(limit=100_000)[audit_before:]
        assert [(r.actor, r.action) for r in records] == [(name, "access_denied")], (role, path)
    assert console.users.get("newbie") is not None if role == "admin" else console.users.get("newbie") is None


def test_viewer_sees_masked_pages_and_no_action_forms(console: ConsoleUnderTest) -> None:
    iid = console.record()
    console.store.add_release_request(iid, "agent7@callcenter.example", "the customer asked for it")
    viewer = console.login("vera")
    page = viewer.get(f"/incidents/{iid}").text
    assert "411111******1111" in page and "*****1120" in page
    assert not any(c in page for c in CANARIES)
    assert "/release" not in page and "/delete" not in page and "/reveal" not in page
    assert "the customer asked for it" not in page  # justifications are for analysts
    assert "release requested" in page
    analyst_page = console.login("anna").get(f"/incidents/{iid}").text
    assert "the customer asked for it" in analyst_page and "/release" in analyst_page
    assert "/reveal" not in analyst_page
    admin_page = console.login("adam").get(f"/incidents/{iid}").text
    assert "/reveal" in admin_page and "/download" in admin_page


def test_signed_out_requests_go_to_login_or_403(console: ConsoleUnderTest) -> None:
    iid = console.record()
    anonymous = console.browser()
    response = anonymous.get(f"/incidents/{iid}?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/incidents/{iid}?x=1"
    response = anonymous.post(f"/incidents/{iid}/delete", {"reason": "x"}, csrf=False)
    assert response.status_code == 403
    assert console.store.get(iid).summary.has_original
