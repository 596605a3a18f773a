"""The responses the proxy sends instead of forwarding: an HTML block page (a jinja2 template an operator
may replace) or a small JSON object for API clients. Both carry the same explanation as the notification
an e-mail sender gets (dlp.notify): the incident id, what was found in masked form (entity, masked value,
location), what could not be inspected, and what to do next. Never content, never a raw value."""

from __future__ import annotations

import enum
import json
from importlib import resources
from pathlib import Path

import jinja2
from mitmproxy import http

from dlp.model import Verdict
from dlp.notify import masked_findings, uninspected_reasons


class BlockReason(enum.StrEnum):
    """Why a request was refused; a fixed set (also the `reason` label of dlp_web_blocked_total)."""

    POLICY = "policy"
    QUARANTINE = "quarantine"
    INSPECTION_UNAVAILABLE = "inspection_unavailable"
    TOO_LARGE = "too_large"
    INVALID_REQUEST = "invalid_request"
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"


_TEXT: dict[BlockReason, tuple[int, str, str]] = {
    BlockReason.POLICY: (
        403, "Blocked by data-loss prevention",
        "This upload contained information that company policy does not allow to be sent to this site. "
        "Nothing was sent.",
    ),
    BlockReason.QUARANTINE: (
        403, "Held for review by data-loss prevention",
        "This upload contained information that needs a security analyst's review before it may leave. "
        "It was not sent; a copy is held for the review.",
    ),
    BlockReason.INSPECTION_UNAVAILABLE: (
        403, "Blocked: the upload could not be checked",
        "The data-loss prevention service could not check this upload just now, so it was not sent. "
        "Try again in a moment.",
    ),
    BlockReason.TOO_LARGE: (
        413, "Blocked: upload too large to check",
        "This upload is larger than the data-loss prevention service can check, so it was not sent.",
    ),
    BlockReason.INVALID_REQUEST: (
        400, "Blocked: malformed request",
        "This request could not be read safely by the data-loss prevention service, so it was not sent.",
    ),
    BlockReason.TLS_HANDSHAKE_FAILED: (
        403, "Blocked: connection could not be checked",
        "This connection could not be checked by the data-loss prevention service, so nothing was sent.",
    ),
}

_NEXT_STEPS: dict[BlockReason, str] = {
    BlockReason.POLICY: (
        "Remove the protected data and send it again, or ask your supervisor how to send it through an "
        "approved channel. Quote the incident reference."
    ),
    BlockReason.QUARANTINE: (
        "A security analyst will review the held copy. If you need it to go through, tell your supervisor "
        "or the security team why, quoting the incident reference. Do not try to send it another way."
    ),
    BlockReason.INSPECTION_UNAVAILABLE: "Try again in a moment. If it keeps happening, tell the security team.",
    BlockReason.TOO_LARGE: "Send a smaller file, or ask the security team how to send a large one.",
    BlockReason.INVALID_REQUEST: "If this keeps happening with a work application, tell the security team.",
    BlockReason.TLS_HANDSHAKE_FAILED: "Make sure the company certificate is installed, or tell the security team.",
}

JSON_ERROR = "blocked by data-loss prevention"


class BlockPages:
    """Renders block responses. The template is compiled once; a broken operator template is an error at
    start-up, not at the first block."""

    def __init__(self, template_path: str = "") -> None:
        if template_path:
            source = Path(template_path).read_text(encoding="utf-8")
        else:
            source = resources.files("dlp").joinpath("defaults/blockpage.html").read_text(encoding="utf-8")
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        self._template = env.from_string(source)
        # Render once now so that a template using an unknown variable fails at start-up.
        self.render_html(BlockReason.POLICY, "INC-00000000-00000000", "m-0")

    def render_html(self, reason: BlockReason, incident: str | None, reference: str,
                    verdict: Verdict | None = None) -> str:
        status, title, explanation = _TEXT[reason]
        return self._template.render(status=status, incident=incident or "", reference=reference,
                                     reason=str(reason), title=title, explanation=explanation,
                                     **_details(reason, verdict))

    def response(self, request: http.Request, reason: BlockReason, incident: str | None,
                 reference: str, verdict: Verdict | None = None) -> http.Response:
        status, _title, explanation = _TEXT[reason]
        headers = {
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-DLP-Blocked": str(reason),
        }
        if incident:
            headers["X-DLP-Incident"] = incident
        if wants_json(request):
            body = {"error": JSON_ERROR, "reason": str(reason), "incident": incident, "reference": reference,
                    "message": explanation, **_details(reason, verdict)}
            headers["Content-Type"] = "application/json"
            return http.Response.make(status, json.dumps(body).encode(), headers)
        headers["Content-Type"] = "text/html; charset=utf-8"
        return http.Response.make(status, self.render_html(reason, incident, reference, verdict).encode(), headers)


def _details(reason: BlockReason, verdict: Verdict | None) -> dict[str, object]:
    """The explanation beyond the fixed text: masked findings, uninspected reasons, next steps."""
    return {
        "findings": masked_findings(verdict) if verdict is not None else [],
        "uninspected": uninspected_reasons(verdict) if verdict is not None else [],
        "next_steps": _NEXT_STEPS[reason],
    }


def wants_json(request: http.Request) -> bool:
    """API clients: they ask for JSON, or they send it and do not ask for HTML."""
    accept = request.headers.get("accept", "").lower()
    if "application/json" in accept or "+json" in accept:
        return "text/html" not in accept
    content_type = request.headers.get("content-type", "").lower()
    return ("json" in content_type) and "text/html" not in accept
