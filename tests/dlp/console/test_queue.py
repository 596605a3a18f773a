"""The queue (filters, search, sort, paging, age badges, release-request flag), bulk triage of similar
incidents, and the overview (SVG charts, oldest open, top senders, precision)."""

from __future__ import annotations

import re

from consolekit import CARD, ConsoleUnderTest, mail

from dlp.model import Channel
from dlp.store import Status

OTHER_CARD = "5500 0000 0000 0004"


def _ids(html: str) -> list[str]:
    return re.findall(r'<a href="/incidents/(INC-[0-9A-F-]+)">', html)


def test_filters_search_sort_and_paging(console: ConsoleUnderTest) -> None:
    first = console.record(sender="a@callcenter.example")
    second = console.record(sender="b@callcenter.example", raw=mail("b@callcenter.example", card=OTHER_CARD))
    web = console.record(channel=Channel.WEB, raw=b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\n"
                         + f"card {CARD}".encode())
    console.store.confirm(first, "anna", "real")
    b = console.login("vera")
    assert set(_ids(b.get("/incidents").text)) == {second, web}  # open by default
    assert _ids(b.get("/incidents?status=all&sort=created").text) == [first, second, web]
    assert _ids(b.get("/incidents?status=all&sort=-created").text) == [web, second, first]
    assert _ids(b.get("/incidents?status=confirmed").text) == [first]
    assert _ids(b.get("/incidents?status=all&channel=web").text) == [web]
    assert _ids(b.get("/incidents?status=all&sender=b@callcenter.example").text) == [second]
    assert _ids(b.get("/incidents?status=all&q=a@callcenter").text) == [first]
    assert set(_ids(b.get("/incidents?status=all&entity=US_SSN").text)) == {first, second}
    assert set(_ids(b.get("/incidents?status=all&age=1h&severity=high").text)) == {first, second, web}
    assert _ids(b.get("/incidents?status=all&action=block").text) == [web]
    page = b.get("/incidents?status=all").text
    assert re.search(r'class="badge age-fresh"[^>]*>\d+ s<', page)
    for bad in ("status=bogus", "sort=password", "age=1y", "page=x", "channel=ftp"):
        response = b.get(f"/incidents?{bad}")
        assert response.status_code == 400 and "Bad filter" in response.text, bad


def test_paging(console: ConsoleUnderTest) -> None:
    from dlp.console.views import queue

    ids = [console.record() for _ in range(3)]
    original = queue.PAGE_SIZE
    queue.PAGE_SIZE = 2
    try:
        b = console.login("vera")
        page1 = b.get("/incidents?sort=created").text
        assert _ids(page1) == ids[:2] and "page 1 of 2" in page1 and "page=2" in page1
        assert _ids(b.get("/incidents?sort=created&page=2").text) == ids[2:]
    finally:
        queue.PAGE_SIZE = original


def test_release_requests_are_flagged_and_filterable(console: ConsoleUnderTest) -> None:
    asked = console.record()
    other = console.record()
    console.store.add_release_request(asked, "agent7@callcenter.example", "customer wants the invoice")
    b = console.login("anna")
    page = b.get("/incidents").text
    row = page[page.index(f"/incidents/{asked}"):][:300]
    assert "release requested" in row
    assert "release requested" not in page[page.index(f"/incidents/{other}"):][:300]
    assert _ids(b.get("/incidents?requested=1").text) == [asked]


def test_bulk_on_selected_incidents_needs_a_reason(console: ConsoleUnderTest) -> None:
    ids = [console.record() for _ in range(3)]
    analyst = console.login("anna")
    analyst.post("/incidents/bulk", {"operation": "false_positive", "reason": "", "ids": ids[:2]})
    assert "needs a reason" in analyst.get("/incidents").text
    response = analyst.post("/incidents/bulk", {"operation": "false_positive", "reason": "test cards", "ids": ids[:2],
                                                "back": "/incidents?status=all"})
    assert response.headers["location"] == "/incidents?status=all"
    assert "Mark false positive: 2 incident(s)." in analyst.get("/incidents").text
    assert [console.store.get(i).summary.status for i in ids] == [Status.FALSE_POSITIVE] * 2 + [Status.NEW]
    assert analyst.post("/incidents/bulk", {"operation": "release", "reason": "x", "ids": ids}).status_code == 400
    assert analyst.post("/incidents/bulk", {"operation": "delete", "reason": "x", "ids": ids[2:],
                                            "back": "//evil.example/"}).headers["location"] == "/incidents"


def test_bulk_all_open_incidents_with_the_same_card(console: ConsoleUnderTest) -> None:
    same = [console.record(sender=f"agent{i}@callcenter.example") for i in range(3)]
    different = console.record(raw=mail(card=OTHER_CARD))
    analyst = console.login("anna")
    incident_page = analyst.get(f"/incidents/{same[0]}").text
    link = re.search(r'href="(/incidents\?value_id=[0-9a-f]+&amp;status=open)">(\d+) open', incident_page)
    assert link and link.group(2) == "3"
    queue_page = analyst.get(link.group(1).replace("&amp;", "&")).text
    assert set(_ids(queue_page)) == set(same) and "Apply to all open" in queue_page
    value_id = re.search(r"value_id=([0-9a-f]+)", link.group(1)).group(1)
    response = analyst.post("/incidents/bulk", {"scope": "similar", "value_id": value_id, "operation": "delete",
                                                "reason": "same leaked card, agent coached"})
    assert response.status_code == 303
    assert [console.store.get(i).summary.status for i in same] == [Status.DELETED] * 3
    assert console.store.get(different).summary.status == Status.NEW
    reasons = {r.reason for r in console.store.audit_records(action="delete")}
    assert reasons == {"same leaked card, agent coached"}


def test_bulk_by_sender(console: ConsoleUnderTest) -> None:
    mine = [console.record(sender="noisy@callcenter.example") for _ in range(2)]
    other = console.record(sender="quiet@callcenter.example")
    analyst = console.login("anna")
    analyst.post("/incidents/bulk", {"scope": "similar", "sender": "noisy@callcenter.example",
                                     "operation": "confirm", "reason": "repeat offender"})
    assert {console.store.get(i).summary.status for i in mine} == {Status.CONFIRMED}
    assert console.store.get(other).summary.status == Status.NEW


def test_overview_chart_tables_and_precision(console: ConsoleUnderTest) -> None:
    ids = [console.record(sender=f"agent{i % 2}@callcenter.example") for i in range(3)]
    console.store.confirm(ids[0], "anna", "real")
    console.store.mark_false_positive(ids[1], "anna", "test data")
    b = console.login("vera")
    page = b.get("/").text
    assert page.count('<svg class="chart"') == 2
    assert re.search(r'<rect class="seg seg-quarantine"[^>]*><title>\d{4}-\d\d-\d\d quarantine: 3</title>', page)
    assert "agent0@callcenter.example" in page and "CREDIT_CARD" in page
    assert "sensitive-data-leaving" in page and "50 %" in page  # 1 confirmed, 1 false positive
    assert ids[2] in page  # the oldest open incident
    hourly = b.get("/?period=24h").text
    assert re.search(r"\d\d:00 quarantine: 3</title>", hourly)
    assert b.get("/?period=forever").status_code == 400
