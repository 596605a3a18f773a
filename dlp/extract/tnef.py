"""A minimal TNEF (winmail.dat) reader: the message body and each attachment's name and data.
Anything it cannot walk is `undecodable_tnef` — the bytes are never passed as clean."""

from __future__ import annotations

import struct

from dlp.extract.budget import Budget, DecodeError
from dlp.extract.charset import decode_text
from dlp.extract.files import Where, add_text, extract_bytes
from dlp.model import Reason

SIGNATURE = 0x223E9F78
_LEVEL_MESSAGE, _LEVEL_ATTACHMENT = 1, 2
_ATT_BODY = 0x800C
_ATT_SUBJECT = 0x8004
_ATT_ATTACH_DATA = 0x800F
_ATT_ATTACH_TITLE = 0x8010
_ATT_ATTACH_REND_DATA = 0x9002
_ATTRIBUTE = struct.Struct("<BII")


def extract_tnef(data: bytes, where: Where, budget: Budget) -> None:
    try:
        body, subject, attachments = parse_tnef(data)
    except DecodeError:
        budget.skip(where.location, Reason.UNDECODABLE_TNEF, "TNEF stream could not be parsed")
        return
    if subject:
        budget.add(f"{where.location}/subject", subject)
    if body:
        add_text(body, where.child(f"{where.location}/body"), budget)
    for index, (name, content) in enumerate(attachments):
        name = name or f"attachment{index}"
        extract_bytes(content, where.child(f"{where.location}/{name}", archive=1), budget, name=name)


def parse_tnef(data: bytes) -> tuple[str, str, list[tuple[str, bytes]]]:
    if len(data) < 6 or struct.unpack_from("<I", data)[0] != SIGNATURE:
        raise DecodeError("not a TNEF stream")
    pos = 6  # signature + legacy key
    body = subject = ""
    attachments: list[list] = []  # [name, data]
    while pos < len(data):
        if pos + _ATTRIBUTE.size > len(data):
            raise DecodeError("truncated TNEF attribute")
        level, attribute, length = _ATTRIBUTE.unpack_from(data, pos)
        pos += _ATTRIBUTE.size
        if level not in (_LEVEL_MESSAGE, _LEVEL_ATTACHMENT) or length > len(data) - pos - 2:
            raise DecodeError("bad TNEF attribute")
        value = data[pos : pos + length]
        pos += length + 2  # value + checksum
        attr_id = attribute & 0xFFFF  # the high half is the value's type
        if level == _LEVEL_MESSAGE:
            if attr_id == _ATT_BODY:
                body = decode_text(value.rstrip(b"\x00"))
            elif attr_id == _ATT_SUBJECT:
                subject = decode_text(value.rstrip(b"\x00"))
        elif attr_id == _ATT_ATTACH_REND_DATA:
            attachments.append(["", b""])
        elif attachments and attr_id == _ATT_ATTACH_TITLE:
            attachments[-1][0] = decode_text(value.rstrip(b"\x00")).replace("/", "_")
        elif attachments and attr_id == _ATT_ATTACH_DATA:
            attachments[-1][1] = value
    return body, subject, [(n, d) for n, d in attachments if d]
