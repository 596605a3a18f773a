"""The public release-request page (issue 11): signed links, clear refusals, CSRF, rate limits, storage
for analysts only, and no justification in the logs or the audit log."""

from __future__ import annotations

import time

from consolekit import CARD, ConsoleUnderTest

from dlp.notify import ReleaseLinks


def _link(console: ConsoleUnderTest, iid: str, sender: str = "agent7@callcenter.example",
          valid: int = 3600, now: float | None = None) -> str:
    token = ReleaseLinks.for_data_dir(console.settings.data_path).sign(iid, sender, valid, now=now)
    return f"/release-request/{token}"


def test_agent_asks_for_a_release_and_the_analyst_sees_it(console: ConsoleUnderTest) -> None:
    iid = console.record()
    agent = console.browser()
    page = agent.get(_link(console, iid))
    assert page.status_code == 200 and iid in page.text and "411111******1111" in page.text
    assert CARD not in page.text and "Sign out" not in page.text
    response = agent.post(_link(console, iid), {"justification": f"Customer asked for the receipt, card {CARD}"})
    assert response.status_code == 200 and "A security analyst will review" in response.text
    requests = console.store.release_requests(iid)
    assert len(requests) == 1 and requests[0].justification.startswith("Customer asked for the receipt")
    assert CARD not in requests[0].justification
    record = console.store.audit_records(incident_id=iid)[-1]
    assert (record.actor, record.action) == ("agent", "release_request")
    assert "Customer" not in record.reason + record.detail
    analyst_page = console.login("anna").get(f"/incidents/{iid}").text
    assert "Customer asked for the receipt" in analyst_page and "release requested" in analyst_page


def test_forged_altered_expired_and_foreign_links_are_refused(console: ConsoleUnderTest) -> None:
    iid = console.record()
    agent = console.browser()
    good = _link(console, iid)
    body, _, mac = good.rpartition("/")[2].partition(".")
    altered = f"/release-request/{body[:-2]}xx.{mac}"
    forged = "/release-request/" + ReleaseLinks(b"k" * 32).sign(iid, "agent7@callcenter.example", 3600)
    cases = {
        altered: (403, "not valid"),
        forged: (403, "not valid"),
        "/release-request/garbage": (403, "not valid"),
        "/release-request/" + "A" * 5000: (403, "not valid"),
        _link(console, iid, valid=60, now=time.time() - 3600): (410, "expired"),
        _link(console, iid, sender="someone.else@callcenter.example"): (403, "not valid"),
        _link(console, "INC-20260101-00000000"): (404, "no longer on record"),
    }
    for path, (status, text) in cases.items():
        for response in (agent.get(path), agent.post(path, {"justification": "please"})):
            assert response.status_code == status, (path[:60], response.status_code)
            assert text in response.text and "Traceback" not in response.text
    assert console.store.release_requests(iid) == []


def test_the_form_needs_its_csrf_token_and_a_text(console: ConsoleUnderTest) -> None:
    iid = console.record()
    agent = console.browser()
    link = _link(console, iid)
    agent.get(link)
    assert agent.post(link, {"justification": "please"}, csrf=False).status_code == 403
    assert agent.post(link, {"justification": "   "}).status_code == 400
    stranger = console.browser()  # no session cookie: never saw the form
    assert stranger.post(link, {"justification": "please", "csrf_token": agent.csrf}).status_code == 403
    assert console.store.release_requests(iid) == []


def test_decided_incidents_and_floods_are_refused(console: ConsoleUnderTest) -> None:
    iid = console.record()
    agent = console.browser()
    link = _link(console, iid)
    agent.get(link)  # the form is open while an analyst deletes the message
    console.store.delete(iid, "anna", "gone")
    assert "already handled" in agent.client.get(link).text
    response = agent.post(link, {"justification": "please"})
    assert response.status_code == 409 and "already deleted" in response.text
    open_iid = console.record()
    link = _link(console, open_iid)
    agent.get(link)
    statuses = [agent.post(link, {"justification": "please"}).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2  # five a link an hour


def test_justification_never_reaches_the_logs(console: ConsoleUnderTest, capfd) -> None:  # type: ignore[no-untyped-def]
    iid = console.record()
    agent = console.browser()
    link = _link(console, iid)
    agent.get(link)
    agent.post(link, {"justification": "UNIQUE-JUSTIFICATION-MARKER customer Jane"})
    out, err = capfd.readouterr()
    assert "UNIQUE-JUSTIFICATION-MARKER" not in out + err
