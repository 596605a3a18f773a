"""The analysts' web console: server-rendered pages (Starlette + jinja2) with accounts, roles and sessions.

Pages: overview (counts over time, oldest open incidents, top senders, precision), the incident queue
(filters, search, sort, paging, bulk triage), one incident (masked findings, history, actions; reveal
for admins), users, retention and the audit log (admins), and the public release-request page that
agents reach through the signed link in their notification.
"""
