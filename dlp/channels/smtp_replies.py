"""Every reply the SMTP relay sends, in one place (adversarial B12).

Texts are fixed: they never carry message content, addresses, exception texts or the next hop's words.
aiosmtpd's own replies pass through `translate`, which maps each one to a catalogue entry by its code, so
a library upgrade cannot make the relay echo client input (for example `500 Error: command "X" ...`).
"""

from __future__ import annotations

import re

from dlp.delivery import DeliveryResult, Outcome

# Greeting and session
GREETING = "220 {hostname} ESMTP dlp"
BYE = "221 2.0.0 Bye"
OK = "250 2.0.0 OK"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
ACCEPTED = "250 2.0.0 Message accepted for delivery"
CANNOT_VRFY = "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
TLS_READY = "220 2.0.0 Ready to start TLS"
AUTH_OK = "235 2.7.0 Authentication successful"

# Temporary refusals: the sender retries
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TOO_MANY_SESSIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_ADDRESS = "421 4.7.0 Too many connections from your address, try again later"
TOO_MANY_COMMANDS = "421 4.7.0 Too many commands, closing connection"
TOO_MANY_AUTH_FAILURES = "421 4.7.0 Too many authentication failures, closing connection"
TEMPFAIL = "451 4.3.0 Temporary processing failure, try again later"
NEXT_HOP_UNAVAILABLE = "451 4.4.1 Next hop unavailable, try again later"
NEXT_HOP_LOST = "451 4.4.2 Connection to the next hop lost, try again later"
NEXT_HOP_DEFERRED = "451 4.4.0 Next hop deferred the message, try again later"
RECIPIENTS_DEFERRED = "451 4.5.3 Next hop deferred some recipients, try again later"
NO_SPACE = "452 4.3.1 Insufficient system storage, try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TLS_UNAVAILABLE = "454 4.7.0 TLS not available"

# Permanent refusals
SYNTAX_ERROR = "500 5.5.2 Syntax error, command unrecognized"
LINE_TOO_LONG = "500 5.5.2 Line too long"
NON_ASCII_COMMAND = "500 5.5.2 Non-ASCII characters are not allowed here"
PARAMETER_ERROR = "501 5.5.4 Syntax error in parameters or arguments"
CONTROL_CHARACTERS = "501 5.1.7 Control characters are not allowed in addresses"
NOT_IMPLEMENTED = "502 5.5.1 Command not implemented"
TOO_MANY_BOGUS = "502 5.5.1 Too many unrecognized commands, goodbye"
BAD_SEQUENCE = "503 5.5.1 Bad sequence of commands"
UNKNOWN_AUTH_MECHANISM = "504 5.5.4 Unrecognized authentication type"
TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_NEEDS_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
BARE_LINE_ENDING = "550 5.6.0 Message contains a bare CR, bare LF or NUL; use CRLF line endings"
BLOCKED = "550 5.7.1 Message refused by data-loss prevention policy (incident {incident})"
HELD_REJECTED = "550 5.7.1 Message held by data-loss prevention policy (incident {incident})"
RECIPIENTS_REJECTED = "550 5.1.1 Recipient address rejected by the next hop"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
MALFORMED_ADDRESS = "553 5.1.3 Malformed address"
NEEDS_SMTPUTF8 = "553 5.6.7 Non-ASCII address requires SMTPUTF8"
NEXT_HOP_NO_SMTPUTF8 = "553 5.6.7 Next hop does not support SMTPUTF8"
LOOP_DETECTED = "554 5.4.6 Mail loop detected"
NEXT_HOP_NO_8BIT = "554 5.6.3 Next hop cannot accept 8-bit content"
NEXT_HOP_REJECTED = "554 5.0.0 Message rejected by the next hop"
TLS_FAILED = "554 5.7.0 Command refused due to lack of security"
PARAMETERS_NOT_SUPPORTED = "555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented"

_INCIDENT = r"INC-\d{8}-[0-9A-F]{8}"
_TEMPLATES = (
    re.compile(re.escape(BLOCKED).replace(r"\{incident\}", _INCIDENT) + "$"),
    re.compile(re.escape(HELD_REJECTED).replace(r"\{incident\}", _INCIDENT) + "$"),
    re.compile(r"220 [A-Za-z0-9.\-]+ ESMTP dlp$"),
    re.compile(r"250[ -][A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$"),  # HELO / EHLO: our (dotted) hostname
    re.compile(r"250[ -](8BITMIME|SMTPUTF8|STARTTLS|ENHANCEDSTATUSCODES|HELP|SIZE \d+|AUTH( [A-Z0-9\-]+)+)$"),
    re.compile(r"334 [A-Za-z0-9+/=]*$"),  # AUTH challenges (base64 of fixed prompts)
)

_FIXED = frozenset(
    value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str) and "{" not in value
)

# aiosmtpd's own texts that have a more precise entry than the by-code fallback.
_AIOSMTPD = {
    "500 Command line too long": LINE_TOO_LONG,
    "500 Error: strict ASCII mode": NON_ASCII_COMMAND,
    "502 5.5.1 Too many unrecognized commands, goodbye.": TOO_MANY_BOGUS,
    "220 Ready to start TLS": TLS_READY,
    "530 Must issue a STARTTLS command first": TLS_REQUIRED,
    "221 Bye": BYE,
    "354 End data with <CR><LF>.<CR><LF>": START_DATA,
    "552 Error: message size exceeds fixed maximum message size": MESSAGE_TOO_BIG,
    "553 5.1.3 Error: malformed address": MALFORMED_ADDRESS,
}

_BY_CODE = {
    "220": TLS_READY,
    "221": BYE,
    "235": AUTH_OK,
    "250": OK,
    "252": CANNOT_VRFY,
    "354": START_DATA,
    "421": TOO_MANY_COMMANDS,
    "451": TEMPFAIL,
    "452": TOO_MANY_RECIPIENTS,
    "454": TLS_UNAVAILABLE,
    "500": SYNTAX_ERROR,
    "501": PARAMETER_ERROR,
    "502": NOT_IMPLEMENTED,
    "503": BAD_SEQUENCE,
    "504": UNKNOWN_AUTH_MECHANISM,
    "530": AUTH_REQUIRED,
    "535": AUTH_INVALID,
    "538": AUTH_NEEDS_TLS,
    "552": MESSAGE_TOO_BIG,
    "553": MALFORMED_ADDRESS,
    "554": TLS_FAILED,
    "555": PARAMETERS_NOT_SUPPORTED,
}


def is_catalogued(reply: str) -> bool:
    """True when `reply` is a catalogue entry (or a filled-in catalogue template)."""
    return reply in _FIXED or any(t.match(reply) for t in _TEMPLATES)


def translate(reply: str) -> str:
    """The catalogue entry for any reply aiosmtpd or a hook wants to send."""
    if is_catalogued(reply):
        return reply
    if reply in _AIOSMTPD:
        return _AIOSMTPD[reply]
    code = reply[:3]
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code.startswith("2"):
        return OK
    if code.startswith("4"):
        return TEMPFAIL
    return SYNTAX_ERROR


def greeting(hostname: str) -> str:
    return GREETING.format(hostname=hostname)


def blocked(incident: str | None) -> str:
    return BLOCKED.format(incident=incident or "INC-00000000-00000000")


def held_rejected(incident: str | None) -> str:
    return HELD_REJECTED.format(incident=incident or "INC-00000000-00000000")


def for_delivery(result: DeliveryResult) -> str:
    """What the client hears about a failed hand-off: the class of the next hop's answer, our text."""
    if result.outcome is Outcome.DELIVERED:
        return ACCEPTED
    if result.outcome is Outcome.UNKNOWN:
        return NEXT_HOP_LOST
    if result.outcome is Outcome.TEMPFAIL:
        return {
            "4.4.1": NEXT_HOP_UNAVAILABLE,
            "4.4.2": NEXT_HOP_LOST,
            "4.5.3": RECIPIENTS_DEFERRED,
            "4.3.0": TEMPFAIL,
        }.get(result.status, NEXT_HOP_DEFERRED)
    return {
        "5.1.1": RECIPIENTS_REJECTED,
        "5.1.7": CONTROL_CHARACTERS,
        "5.6.3": NEXT_HOP_NO_8BIT,
        "5.6.7": NEXT_HOP_NO_SMTPUTF8,
    }.get(result.status, NEXT_HOP_REJECTED)
