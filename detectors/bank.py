"""Bank account data: IBANs (IBAN_CODE), ABA routing numbers (ABA_ROUTING_NUMBER) and US bank account
numbers (US_BANK_NUMBER).

IBAN: two letters, two check digits, then the country's BBAN, spaces allowed between characters; the
country's length (ISO 13616 registry; the table follows presidio's iban_patterns plus later entries)
and mod-97 must hold. Lowercase IBANs count too. Match.value is upper case without spaces; label is
the country code.

ABA routing numbers: 9 digits, a Federal Reserve prefix (00-12, 21-32, 61-72, 80) and the 3-7-1
checksum, and a context word ("routing", "aba", "transit", ...): nine digits alone are too common.

US bank account numbers have no checksum: 8-17 digits are reported only next to a context word
("account", "acct", "checking", ...), like presidio's UsBankRecognizer but without its 0.05 guesses.
"""

from __future__ import annotations

from collections.abc import Iterable

from detectors._numbers import NUMBER_RUN, has_word, separators_between, word_pattern
from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
# Candidate: country, check digits and the first character of the BBAN (a space allowed before it); the
# validator reads the rest, alphanumerics with single spaces allowed between them.
IBAN_START = r"\b[A-Za-z]{2}[0-9]{2} ?[A-Za-z0-9]"
ABA_CONTEXT = ("routing", "aba", "rtn", "transit", "abartn", "routing#", "r/t")
ACCOUNT_CONTEXT = ("account", "acct", "a/c", "checking", "savings", "bank", "deposit", "acc no", "acc#",
                   "acc. no")
_ABA_CONTEXT, _ACCOUNT_CONTEXT = word_pattern(ABA_CONTEXT), word_pattern(ACCOUNT_CONTEXT)
# Each letter as its base-36 value (A -> "10" ... Z -> "35"), the ISO 7064 mod-97 digit string.
_BASE36 = str.maketrans({chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)})


def iban_ok(iban: str) -> bool:
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    return int(rearranged.translate(_BASE36)) % 97 == 1


def aba_ok(digits: str) -> bool:
    if len(digits) != 9 or not digits.isdigit():
        return False
    prefix = int(digits[:2])
    if not (prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80):
        return False
    d = [int(c) for c in digits]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


class IbanDetector(Detector):
    name = "iban"
    entities = ("IBAN_CODE",)

    def patterns(self) -> list[Pattern]:
        return [Pattern("iban", IBAN_START, som=False)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        t = text.text
        # IBAN_START is reported without its start (much cheaper for Hyperscan): the match is five
        # characters long, six with a space after the check digits.
        start = end - 6 if t[end - 2] == " " else end - 5
        country = t[start : start + 2].upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            return
        # The rest as people write it: letters and digits with single spaces between them, up to the
        # country's length.
        chars = [t[start : start + 4]]
        need, i, size = length - 4, start + 4, len(t)
        while need:
            if i < size and t[i] == " ":
                i += 1
            if i >= size or not _alphanumeric(t[i]):
                return
            chars.append(t[i])
            need -= 1
            i += 1
        if i < size and t[i].isalnum():
            return  # the candidate runs on: part of a longer token, not this IBAN
        iban = "".join(chars).upper()
        if iban_ok(iban):
            yield Match("IBAN_CODE", start, i, 1.0, iban, self.name, country)


def _alphanumeric(ch: str) -> bool:
    c = ord(ch)
    return 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122


class AbaRoutingDetector(Detector):
    name = "aba_routing"
    entities = ("ABA_ROUTING_NUMBER",)
    context_words = (ABA_CONTEXT,)

    def patterns(self) -> list[Pattern]:
        return [Pattern("run", NUMBER_RUN)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        if not text.mentions_near(ABA_CONTEXT, start, 40) or not has_word(text.clause_before(start, 40), _ABA_CONTEXT):
            return
        for g in text.digit_groups(start, end):
            if len(g.digits) == 9 and aba_ok(g.digits) and has_word(text.clause_before(g.start, 40), _ABA_CONTEXT):
                yield Match("ABA_ROUTING_NUMBER", g.start, g.end, 0.9, g.digits, self.name)


class UsBankNumberDetector(Detector):
    name = "us_bank_number"
    entities = ("US_BANK_NUMBER",)
    context_words = (ACCOUNT_CONTEXT,)

    def patterns(self) -> list[Pattern]:
        return [Pattern("run", NUMBER_RUN)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        if not text.mentions_near(ACCOUNT_CONTEXT, start, 32) or not has_word(text.clause_before(start, 32),
                                                                              _ACCOUNT_CONTEXT):
            return
        t = text.text
        groups = text.digit_groups(start, end)
        seps = separators_between(t, groups, 0, len(groups) - 1)
        if len(groups) > 1 and all(s in (" ", "-") for s in seps) and len(set(seps)) == 1:
            spans = [(groups[0].start, groups[-1].end, "".join(g.digits for g in groups))]
        else:
            spans = [(g.start, g.end, g.digits) for g in groups]
        for s, e, digits in spans:
            if 8 <= len(digits) <= 17 and len(set(digits)) > 1 and has_word(text.clause_before(s, 32),
                                                                             _ACCOUNT_CONTEXT):
                yield Match("US_BANK_NUMBER", s, e, 0.7, digits, self.name)
