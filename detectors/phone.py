"""Phone numbers (PHONE_NUMBER), validated by the phonenumbers library (Google's libphonenumber data).

A candidate is a digit run (see detectors._numbers) of 7 to 15 digits. A number written
internationally (+44 ..., 0044 ...) is parsed as such; any other is tried against the default regions in
order (option `regions`, default US GB DE FR ES IN PH MX) and the first region in which it is a valid
number wins. A bare, unformatted run of digits counts only next to a phone word ("call", "tel",
"mobile", ...), and a number right after a reference word ("invoice", "order", "ticket", ...) does not
count unless a phone word is there too: invoice and order numbers look like phone numbers.
Match.value is E.164 (+14155552671) so that one number in any format hashes to one value id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers

from detectors._numbers import NUMBER_RUN, has_word, word_pattern
from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match

DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "ES", "IN", "PH", "MX")
CONTEXT = ("phone", "call", "tel", "mobile", "cell", "fax", "whatsapp", "contact", "reach", "dial", "text me",
           "sms", "landline", "number is", "no.", "ph:", "ph.", "mob")
_CONTEXT = word_pattern(CONTEXT)
REFERENCE_WORDS = frozenset({"invoice", "inv", "order", "ref", "ticket", "tracking", "case", "po", "sku", "serial",
                   "confirmation", "booking", "transaction", "txn", "id", "#", "account", "acct", "policy",
                   "claim", "receipt", "item", "part", "model", "version", "build"})
_FORMAT = re.compile(r"^\+?[\d\s().\-]+$")
_GROUPS = re.compile(r"[0-9]+")
_SEPS = re.compile(r"(?<=[0-9])[^0-9]+(?=[0-9])")


@lru_cache(maxsize=8192)
def _e164(candidate: str, regions: tuple[str, ...]) -> str | None:
    try:
        if candidate.startswith(("+", "00")):
            number = phonenumbers.parse("+" + candidate.lstrip("+0") if candidate.startswith("00") else candidate)
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if (
                _valid(number)) else None
        for region in regions:
            number = phonenumbers.parse(candidate, region)
            if _valid(number):
                return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return None
    return None


def forget_validated() -> None:
    """Empty the cache of validated candidates: a benchmark's timed pass then starts as a fresh corpus
    would, with no value validated yet (`dlp bench edm`)."""
    _e164.cache_clear()


def _valid(number: phonenumbers.PhoneNumber) -> bool:
    """phonenumbers.is_valid_number, with a shortcut for the common case: that function first works out
    which of the regions sharing the country code the number belongs to (testing the main one first,
    when it has no leading-digits rule) and then tests the number again for that region. A number valid
    for such a main region (US for +1, GB for +44) is therefore valid, and one test is enough."""
    main = phonenumbers.region_code_for_country_code(number.country_code or 0)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(main)
    if metadata is not None and metadata.leading_digits is None and (
            phonenumbers.is_valid_number_for_region(number, main)):
        return True
    return phonenumbers.is_valid_number(number)


class PhoneDetector(Detector):
    name = "phone"
    entities = ("PHONE_NUMBER",)

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.regions = tuple(str(r).upper() for r in self.options.get("regions", DEFAULT_REGIONS))

    def patterns(self) -> list[Pattern]:
        return [Pattern("run", NUMBER_RUN)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        if text.shape(start, end).digits < 7:
            return
        t = text.text
        if start > 0 and t[start - 1] == "(":
            start -= 1
        refs: dict[int, bool] = {}  # candidate start -> right after a reference word (shared by windows)
        for s, e in _pieces(t, start, end):
            while e > s and not _is_digit(t[e - 1]):
                e -= 1
            while s < e and t[s] in " .-)":
                s += 1
            if s >= e or text.is_claimed(s, e):
                continue  # all of it is a card, SSN, IBAN...: a phone number there would be dropped
            whole = self._number(text, s, e, refs)
            if whole is not None:
                yield whole
                continue
            if refs.get(s) and (t[s].isdigit() or t[s + 1].isdigit()) and "+" not in t[s + 1 : e] and (
                    "(" not in t[s + 1 : e]):
                # After a reference word ("invoice 212-555-0142"): every window from this start fails the
                # same test, and no later group is marked with + or ( to start another number.
                continue
            # Several numbers in one run ("+1 917 614 4603 3555 9103 ..."): try the group-aligned
            # windows, longest first from each start.
            groups = list(_GROUPS.finditer(t, s, e))
            if len(groups) < 2:
                continue
            # digits[k] = number of digits in groups[:k]: a window's size without building it.
            digits = [0]
            for g in groups:
                digits.append(digits[-1] + g.end() - g.start())
            i = 0
            while i < len(groups):
                if text.is_claimed(groups[i].start(), groups[i].end()):
                    i += 1  # a group of a card or SSN in this run: the next number may follow it
                    continue
                if i > 0 and t[groups[i].start() - 1] not in "+(":
                    break  # only a number at the start of the run, or one marked with + or (
                found = None
                for j in range(len(groups) - 1, i - 1, -1):
                    if (i, j) == (0, len(groups) - 1) or not 7 <= digits[j + 1] - digits[i] <= 15:
                        continue
                    ws = groups[i].start()
                    if ws > s and t[ws - 1] in "+(":
                        ws -= 1
                    found = self._number(text, ws, groups[j].end(), refs)
                    if found is not None:
                        yield found
                        i = j
                        break
                i += 1

    def _number(self, text: ScanText, s: int, e: int, refs: dict[int, bool]) -> Match | None:
        t = text.text
        # Cheapest checks first: each one alone rejects most of the numbers that are not phones, and
        # the reference-word test is made once per start for the whole run and all its windows.
        if (s > 0 and t[s - 1].isalnum()) or (e < len(t) and t[e].isalnum()):
            return None
        after_reference = refs.get(s)
        if after_reference is None:
            after_reference = refs[s] = _after_reference(text.clause_before(s, 32))
        if after_reference:
            return None
        candidate = t[s:e]
        groups = _GROUPS.findall(candidate)
        digits = sum(map(len, groups))
        if not 7 <= digits <= 15 or not _FORMAT.match(candidate) or not _phone_shaped(candidate, groups):
            return None
        before = text.clause_before(s, 32)
        context = has_word(before, _CONTEXT) or has_word(text.after(e, 16), _CONTEXT)
        if len(groups) == 1 and not candidate.startswith("+") and not context:
            return None
        value = _e164(candidate, self.regions)
        if value is None:
            return None
        score = 0.9 if context else (0.75 if candidate.startswith("+") else 0.6)
        return Match("PHONE_NUMBER", s, e, score, value, self.name)


def _after_reference(before: str) -> bool:
    """One of the last two words names a record ("invoice", "order #", "id"...), not a phone."""
    for word in before.replace(":", " ").rsplit(None, 2)[-2:]:
        if word.endswith("#") or word.strip(".#:") in REFERENCE_WORDS:
            return True
    return False


def _phone_shaped(candidate: str, groups: list[str]) -> bool:
    """Grouping that people use for phone numbers: the last group has 3+ digits (2 only in the
    French / Spanish pairs style), no date-like 4-2-2 run, and one kind of joiner."""
    if len(groups) == 1:
        return True
    if max(map(len, groups)) > 6:
        return False
    if len(groups[-1]) < 3 and not (len(groups) >= 4 and all(len(g) == 2 for g in groups[-4:])):
        return False
    if len(groups[0]) == 4 and len(groups[1]) == 2 and not candidate.startswith("+"):
        return False
    seps = {sep for sep in _SEPS.findall(candidate) if "(" not in sep and ")" not in sep}
    return len(seps) <= 1  # mixed joiners ("703-24-6197 3589"): several numbers, not one phone number


def _pieces(t: str, start: int, end: int) -> list[tuple[int, int]]:
    """The spans of [start, end) between tabs, line breaks, table bars and slashes, which split a phone
    number from its neighbours (a character loop: compiled, cheaper than a regex and its matches)."""
    out: list[tuple[int, int]] = []
    s = start
    for i in range(start, end):
        c = ord(t[i])
        if c == 9 or c == 10 or c == 13 or c == 124 or c == 47 or c == 92:  # \t \n \r | / \\
            if i > s:
                out.append((s, i))
            s = i + 1
    if end > s:
        out.append((s, end))
    return out


def _is_digit(ch: str) -> bool:
    """str.isdigit, without a method call for the ASCII characters that are nearly all there is."""
    c = ord(ch)
    return 48 <= c <= 57 or (c > 127 and ch.isdigit())
