"""How EDM reads a value: one normalised form per field type, the same on the index and the scan side.

Every value becomes one or more `(kind, text)` keys. The kind says which normaliser produced it, so that
a date and an account number never meet by accident:

- `d` digits only (account, card, ssn): separators and letters dropped, at least five digits;
- `p` a phone number in E.164 (`+15552014567`);
- `e` an e-mail address, lowercased;
- `t` a date in ISO form (`1985-03-12`);
- `w` words: case, accents, punctuation and spacing folded; a name's words are sorted so that
  "Smith, John" and "John Smith" meet; other text keeps its order;
- `c` compact: letters and digits run together (postcodes: "SW1A 1AA" = "sw1a1aa").
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import phonenumbers

from dlp.normalize import normalize

MIN_DIGITS = 5  # numbers under five digits are too common to mean anything
MAX_WORDS = 4  # the longest name or text n-gram looked up


class FieldType(enum.StrEnum):
    NAME = "name"
    ACCOUNT = "account"
    CARD = "card"
    SSN = "ssn"
    EMAIL = "email"
    PHONE = "phone"
    DATE = "date"
    POSTCODE = "postcode"
    TEXT = "text"


IDENTIFYING_BY_DEFAULT = frozenset({FieldType.ACCOUNT, FieldType.CARD, FieldType.SSN, FieldType.EMAIL,
                                    FieldType.PHONE})

# Kinds of normalised keys (one byte each in the hashed input).
DIGITS, PHONE, EMAIL, DATE, WORDS, COMPACT = "d", "p", "e", "t", "w", "c"

# Which kind of key each field type produces.
KIND_OF = {
    FieldType.NAME: WORDS, FieldType.TEXT: WORDS, FieldType.ACCOUNT: DIGITS, FieldType.CARD: DIGITS,
    FieldType.SSN: DIGITS, FieldType.EMAIL: EMAIL, FieldType.PHONE: PHONE, FieldType.DATE: DATE,
    FieldType.POSTCODE: COMPACT,
}

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_NON_DIGIT = re.compile(r"\D+")
_NON_ALNUM = re.compile(r"[\W_]+")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")


class DateOrder(enum.StrEnum):
    DMY = "dmy"
    MDY = "mdy"


@dataclass(frozen=True, slots=True)
class FieldOptions:
    """How ambiguous inputs are read when indexing: the phone region and the order of numeric dates."""

    region: str = "US"
    date_order: DateOrder = DateOrder.MDY


def fold_words(text: str) -> list[str]:
    """Words of already-normalised text, lowercased, apostrophes dropped ("O'Brien" -> "obrien")."""
    return [w.lower().replace("'", "").replace("’", "") for w in WORD.findall(text)]


def words_key(words: list[str], *, sort: bool) -> str:
    return " ".join(sorted(words) if sort else words)


def _digits(text: str) -> str:
    return _NON_DIGIT.sub("", text)


def _numeric(text: str, options: FieldOptions) -> list[tuple[str, str]]:
    digits = _digits(text)
    return [(DIGITS, digits)] if len(digits) >= MIN_DIGITS else []


def _email(text: str, options: FieldOptions) -> list[tuple[str, str]]:
    return [(EMAIL, text.lower())] if EMAIL_RE.fullmatch(text) else []


def _phone(text: str, options: FieldOptions) -> list[tuple[str, str]]:
    e164 = phone_e164(text, options.region)
    return [(PHONE, e164)] if e164 else []


def _date(text: str, options: FieldOptions) -> list[tuple[str, str]]:
    day = parse_date(text, options.date_order)
    return [(DATE, day.isoformat())] if day else []


def _postcode(text: str, options: FieldOptions) -> list[tuple[str, str]]:
    compact = _NON_ALNUM.sub("", text).lower()
    if len(compact) < 3 or (compact.isdigit() and len(compact) < MIN_DIGITS):
        return []
    return [(COMPACT, compact)]


def _words(sort: bool):  # -> normaliser
    def normalise(text: str, options: FieldOptions) -> list[tuple[str, str]]:
        words = fold_words(text)[:MAX_WORDS]
        if not words or (len(words) == 1 and (len(words[0]) < 2 or words[0].isdigit())):
            return []
        return [(WORDS, words_key(words, sort=sort))]
    return normalise


_NORMALISERS = {
    FieldType.ACCOUNT: _numeric, FieldType.CARD: _numeric, FieldType.SSN: _numeric, FieldType.EMAIL: _email,
    FieldType.PHONE: _phone, FieldType.DATE: _date, FieldType.POSTCODE: _postcode,
    FieldType.NAME: _words(sort=True), FieldType.TEXT: _words(sort=False),
}


def normalize_field(field_type: FieldType, raw: str, options: FieldOptions) -> list[tuple[str, str]]:
    """The keys one cell of a customer export stands for; empty when the value cannot be used."""
    text = (raw if raw.isascii() else normalize(raw).text).strip()
    if not text:
        return []
    return _NORMALISERS[field_type](text, options)


_PHONE_SIMPLE = re.compile(r"\(?\d[\d ().\-]*")


@lru_cache(maxsize=64)
def _fast_phone_rule(region: str) -> tuple[str, str, frozenset[int]] | None:
    """(country code, national prefix, possible national lengths) when the region's numbers can be
    turned into E.164 without phonenumbers' parser: no carrier codes or prefix rewriting (US, GB, FR...)."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.national_prefix_transform_rule:
        return None
    prefix = meta.national_prefix or ""
    parsing = meta.national_prefix_for_parsing
    if parsing not in (None, prefix) or (prefix and not prefix.isdigit()):
        return None
    return str(meta.country_code), prefix, frozenset(meta.general_desc.possible_length or ())


def phone_e164(text: str, region: str) -> str | None:
    """E.164 form of a phone number as written in a customer export, or None if it is not one.

    The common case (a national number of the default region, digits and separators only) skips the
    full parser, which costs about 20 µs a number; anything else goes through phonenumbers."""
    rule = _fast_phone_rule(region)
    if rule and _PHONE_SIMPLE.fullmatch(text):
        cc, prefix, lengths = rule
        digits = _digits(text)
        # A leading 0, the national prefix or the country code can mean something else: parse those.
        if digits[:1] != "0" and not (prefix and digits.startswith(prefix)) and not digits.startswith(cc) \
                and len(digits) in lengths:
            return f"+{cc}{digits}"
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True, slots=True)
class PhoneRegion:
    """What the scan side needs to turn a run of digits into the E.164 numbers it may stand for, without
    running the full parser on every number of every message: the same readings phonenumbers makes."""

    country_code: str
    national_prefix: str
    international_prefixes: tuple[str, ...]
    national_lengths: frozenset[int]

    @classmethod
    def for_region(cls, region: str) -> PhoneRegion:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
        if meta is None:
            raise ValueError(f"unknown phone region {region!r}")
        prefixes = {"00"}
        if meta.international_prefix and meta.international_prefix.isdigit():
            prefixes.add(meta.international_prefix)
        return cls(str(meta.country_code), meta.national_prefix or "", tuple(sorted(prefixes, key=len, reverse=True)),
                   frozenset(meta.general_desc.possible_length or range(4, 15)))

    def candidates(self, digits: str, plus: bool) -> set[str]:
        """E.164 strings a run of 7-15 digits may stand for (written with or without a leading "+")."""
        if plus:
            # "+44 (0)20 7946 0958": a trunk 0 written after the country code (of 1 to 3 digits).
            return {"+" + digits} | {f"+{digits[:k]}{digits[k + 1:]}" for k in (1, 2, 3) if digits[k:k + 1] == "0"}
        out = set()
        lengths, cc, prefix = self.national_lengths, self.country_code, self.national_prefix
        n = len(digits)
        for intl in self.international_prefixes:
            if digits.startswith(intl) and 8 <= n - len(intl) <= 15:
                out.add("+" + digits[len(intl):])
                break
        if prefix and digits.startswith(prefix) and n - len(prefix) in lengths:
            out.add("+" + cc + digits[len(prefix):])
        if digits.startswith(cc) and n - len(cc) in lengths:
            out.add("+" + digits)  # the region's own country code written without "+"
        if n in lengths:
            out.add("+" + cc + digits)
        return out


_NUMERIC_DATE = re.compile(r"(\d{1,4})[./\-](\d{1,2})[./\-](\d{1,4})")
# The middle of every numeric date ("/12/1", "-03-1"): searched for in a few microseconds, where the full
# pattern, which starts at every digit, takes about three times as long.
_NUMERIC_DATE_MIDDLE = re.compile(r"[./\-]\d{1,2}[./\-]\d")
_TEXT_DATE_DMY = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[ \-]([A-Za-z]{3,9})\.?,?[ \-](\d{4})")
_TEXT_DATE_MDY = re.compile(r"([A-Za-z]{3,9})\.?[ \-](\d{1,2})(?:st|nd|rd|th)?,?[ \-](\d{4})")


def _safe_date(y: int, m: int, d: int) -> date | None:
    if not 1000 <= y <= 2999:
        return None
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _month(name: str) -> int | None:
    """1-12 for a month name or an abbreviation of at least three letters ("Sep", "Sept", "September")."""
    name = name.lower()
    for number, full in enumerate(_MONTH_NAMES, 1):
        if full.startswith(name):
            return number if len(name) >= 3 else None
    return None


def date_readings(a: str, b: str, c: str) -> list[date]:
    """Every valid reading of a numeric date (y-m-d, d-m-y, m-d-y): the scan side does not know the order."""
    out = []
    if len(a) == 4:
        out.append(_safe_date(int(a), int(b), int(c)))
    elif len(c) == 4:
        out.append(_safe_date(int(c), int(b), int(a)))
        out.append(_safe_date(int(c), int(a), int(b)))
    return list(dict.fromkeys(d for d in out if d is not None))


def parse_date(text: str, order: DateOrder) -> date | None:
    """One date from an export cell: ISO, numeric in the configured order, or with a month name."""
    text = text.strip().split("T")[0].split(" 00:00")[0].strip()
    m = _NUMERIC_DATE.fullmatch(text)
    if m:
        a, b, c = m.groups()
        if len(a) == 4:
            return _safe_date(int(a), int(b), int(c))
        if len(c) != 4:
            return None
        if order is DateOrder.DMY:
            return _safe_date(int(c), int(b), int(a))
        return _safe_date(int(c), int(a), int(b))
    m = _TEXT_DATE_DMY.fullmatch(text)
    if m and (month := _month(m.group(2))):
        return _safe_date(int(m.group(3)), month, int(m.group(1)))
    m = _TEXT_DATE_MDY.fullmatch(text)
    if m and (month := _month(m.group(1))):
        return _safe_date(int(m.group(3)), month, int(m.group(2)))
    return None


# What both text-date patterns need, in the lowercased text: a month's first three letters (`_month`),
# at most six more letters (the month group has at most nine), then the separators and a digit. Prose
# ("summary of", "may be") fails it, so the two patterns, slow over prose, rarely run.
_MONTH_THEN_NUMBER = re.compile(
    "(?:" + "|".join(name[:3] for name in _MONTH_NAMES) + r")[a-z]{0,6}\.?,?[ \-]\d")


def _names_a_month(lower: str) -> bool:
    """Whether a month name followed by a number may occur: a date with a month name needs one."""
    if not lower.isascii():
        return _MONTH_THEN_NUMBER.search(lower) is not None
    # ASCII: the same pattern tried only where letters, an optional "." and ",", then a space or a
    # hyphen and a digit meet (found with str.find over the character classes, in C), on the few
    # characters a match there can span (at most nine letters, then the joint).
    classes = lower.encode().translate(_DATE_CLASSES).decode()
    search = _MONTH_THEN_NUMBER.search
    for joint in _LETTERS_THEN_NUMBER:
        at = classes.find(joint)
        while at >= 0:
            if search(lower, max(0, at - 8), at + len(joint)):
                return True
            at = classes.find(joint, at + 1)
    return False


# Character classes of ASCII text for the date tests: letters "a", digits "0", space and hyphen " ",
# "." "/" and "," themselves, anything else "#".
_DATE_CLASSES = bytes(
    97 if i < 128 and chr(i).isalpha() else 48 if 48 <= i <= 57 else 32 if i in (32, 45) else i if i in (44, 46, 47)
    else 35 for i in range(256))
_LETTERS_THEN_NUMBER = ("a 0", "a. 0", "a, 0", "a., 0")


def _first_numeric_date_middle(text: str) -> int:
    """Where the first middle of a numeric date (separator, one or two digits, separator, digit) is,
    or -1: found with str.find over the character classes of ASCII text, by the regex otherwise."""
    if not text.isascii():
        m = _NUMERIC_DATE_MIDDLE.search(text)
        return m.start() if m else -1
    classes = text.encode().translate(_DATE_MIDDLE_CLASSES).decode()
    found = [i for i in (classes.find("/0/0"), classes.find("/00/0")) if i >= 0]
    return min(found) if found else -1


_DATE_MIDDLE_CLASSES = bytes(48 if 48 <= i <= 57 else 47 if i in (45, 46, 47) else 35 for i in range(256))


def text_dates(text: str, lower: str | None = None) -> list[tuple[str, int, int]]:
    """ISO forms of every date-looking span in normalised text, with its span (`lower`: the text
    lowercased, when the caller has it)."""
    out: list[tuple[str, int, int]] = []
    middle = _first_numeric_date_middle(text)  # a quick necessary condition: most texts hold no numeric date
    if middle >= 0:
        # No date starts more than four digits before the first middle, and the pattern has no
        # look-behind: scanning from there finds what scanning from the start would.
        for m in _NUMERIC_DATE.finditer(text, max(0, middle - 4)):
            for d in date_readings(*m.groups()):
                out.append((d.isoformat(), m.start(), m.end()))
    if not _names_a_month(lower if lower is not None else text.lower()):
        return out
    for pattern, day_group, month_group in ((_TEXT_DATE_DMY, 1, 2), (_TEXT_DATE_MDY, 2, 1)):
        for m in pattern.finditer(text):
            month = _month(m.group(month_group))
            if month and (day := _safe_date(int(m.group(3)), month, int(m.group(day_group)))):
                out.append((day.isoformat(), m.start(), m.end()))
    return out
