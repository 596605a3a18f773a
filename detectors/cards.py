"""Payment card numbers (CREDIT_CARD): every major network, the right lengths per network, and Luhn.

Improves on presidio's CreditCardRecognizer (whose pattern misses Mastercard's 2-series, 2221-2720, and
accepts any 13-19 Luhn-valid digits): a candidate must carry a network's issuer prefix and one of that
network's lengths. Separators may be spaces, dashes, dots, slashes or none, and a number split across
lines or table cells (case E7) is joined; the layout only changes the score (4-4-4-4, Amex 4-6-5 and an
unbroken run score 1.0; any other grouping 0.8).

Digits written with look-alike letters (O for 0, l or I for 1, case E6) are reported with a low score
(0.3, below the shipped policy's threshold) so that analysts can hunt for them.

Vendor test numbers (4111111111111111, 4242424242424242, ...) ARE reported by default: an agent could
paste a real card shaped just like them, and demos and tests rely on them. Set the option
`exclude_test_numbers: true` to drop the published test PANs (as Purview does, case E8).

Match.label is the network: visa, mastercard, amex, discover, jcb, diners, unionpay, maestro, mir.
"""

from __future__ import annotations

from collections.abc import Iterable

from detectors._numbers import (
    NUMBER_RUN,
    Group,
    has_word,
    luhn_ok,
    separators_between,
    word_pattern,
)
from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match

# Published test numbers of Stripe, Braintree, Adyen, PayPal and the networks' own documentation.
TEST_NUMBERS = frozenset({
    "4111111111111111", "4242424242424242", "4012888888881881", "4222222222222", "4000056655665556",
    "4012000033330026", "4005519200000004", "4009348888881881", "4217651111111119",
    "5555555555554444", "5105105105105100", "5200828282828210", "2223003122003222", "2221000000000009",
    "5454545454545454", "5431111111111111",
    "378282246310005", "371449635398431", "378734493671000", "340000000000009",
    "6011111111111117", "6011000990139424", "6011000400000000", "6011601160116611",
    "3530111333300000", "3566002020360505", "3566111111111113",
    "30569309025904", "38520000023237", "36227206271667", "3056930009020004",
    "6200000000000005", "6759649826438453",
})

CONTEXT = ("card", "credit", "debit", "visa", "mastercard", "master card", "amex", "american express",
           "discover", "jcb", "diners", "maestro", "unionpay", "cc ", "cc#", "ccn", "pan", "cvv", "cvc",
           "exp", "expiry", "payment")
_CONTEXT = word_pattern(CONTEXT)

_STANDARD_LAYOUTS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 4, 2),
                     (4, 4, 4, 3), (4, 4, 5), (4, 4, 4, 4, 2), (4, 4, 4, 4, 1)}
# A digit run with at least one look-alike letter in it, ending on a terminator (one report per run).
_SWAPPED_RUN = r"[0-9][0-9OolI \-.]{0,30}[OolI][0-9OolI \-.]{0,30}[0-9][^0-9OolI]"
_SWAPS = str.maketrans({"O": "0", "o": "0", "l": "1", "I": "1"})


def network_of(digits: str) -> str | None:
    """The card network for a number of this length and prefix, or None. Dispatches on the first
    digit: most candidates (dates, tracking and order numbers) are rejected without any arithmetic."""
    n = len(digits)
    first = digits[0]
    if first == "4":
        return "visa" if n in (13, 16, 19) else None
    if first == "5":
        p2 = int(digits[:2])
        if 51 <= p2 <= 55:
            return "mastercard" if n == 16 else None
        return "maestro" if digits[:4] in _MAESTRO and 12 <= n <= 19 else None
    if first == "2":
        p4 = int(digits[:4])
        if 2221 <= p4 <= 2720:
            return "mastercard" if n == 16 else None
        return "mir" if 2200 <= p4 <= 2204 and 16 <= n <= 19 else None
    if first == "3":
        p2, p4 = int(digits[:2]), int(digits[:4])
        if p2 in (34, 37):
            return "amex" if n == 15 else None
        if 3528 <= p4 <= 3589:
            return "jcb" if 16 <= n <= 19 else None
        if 300 <= int(digits[:3]) <= 305 or p4 == 3095 or p2 in (36, 38, 39):
            return "diners" if 14 <= n <= 19 else None
        return None
    if first == "6":
        p2, p4 = int(digits[:2]), int(digits[:4])
        if p4 == 6011 or 644 <= int(digits[:3]) <= 649 or p2 == 65 or 622126 <= int(digits[:6]) <= 622925:
            return "discover" if 16 <= n <= 19 else None
        if p2 == 62:
            return "unionpay" if 16 <= n <= 19 else None
        return "maestro" if digits[:4] in _MAESTRO and 12 <= n <= 19 else None
    if first == "8":
        return "unionpay" if digits[1] == "1" and 16 <= n <= 19 else None
    return None


_NETWORK_FIRST_DIGITS = frozenset("234568")  # network_of is None for any other first digit
_MAESTRO = frozenset({"5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"})


class CardDetector(Detector):
    name = "payment_cards"
    entities = ("CREDIT_CARD",)

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.exclude_test_numbers = bool(self.options.get("exclude_test_numbers", False))

    def patterns(self) -> list[Pattern]:
        return [Pattern("run", NUMBER_RUN), Pattern("swapped", _SWAPPED_RUN)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        if key == "swapped":
            yield from self._swapped(text, start, end)
            return
        if text.shape(start, end).digits < 12:
            return
        groups = text.digit_groups(start, end)
        t = text.text
        size = len(t)
        count = len(groups)
        best: dict[int, tuple[int, str, str]] = {}  # first group -> (last group, digits, network)
        # Every window of whole groups with 12-19 digits (see _numbers.windows), not glued to a letter on
        # either side (a reference such as INV4111...), starting with a network's first digit.
        for first in range(count):
            g0 = groups[first]
            if g0.digits[0] not in _NETWORK_FIRST_DIGITS or (g0.start > 0 and t[g0.start - 1].isalnum()):
                continue
            digits = ""
            for last in range(first, count):
                g1 = groups[last]
                digits += g1.digits
                if len(digits) > 19:
                    break
                if len(digits) < 12 or (g1.end < size and t[g1.end].isalnum()):
                    continue
                network = network_of(digits)
                if network is None or not luhn_ok(digits):
                    continue
                if self.exclude_test_numbers and digits in TEST_NUMBERS:
                    continue
                best[first] = (last, digits, network)  # windows grow from each start: the longest wins
        chosen: list[tuple[int, int, str, str]] = []
        taken_until = -1
        for first in sorted(best):
            last, digits, network = best[first]
            if first > taken_until:
                chosen.append((first, last, digits, network))
                taken_until = last
        covered = {k for first, last, _, _ in chosen for k in range(first, last + 1)}
        for first, last, digits, network in chosen:
            if _inside_longer(text.text, groups, first, last, covered):
                continue
            score = self._score(text, groups, first, last)
            yield Match("CREDIT_CARD", groups[first].start, groups[last].end, score, digits, self.name, network)

    def _score(self, text: ScanText, groups: list[Group], first: int, last: int) -> float:
        seps = separators_between(text.text, groups, first, last)
        layout = tuple(len(groups[k].digits) for k in range(first, last + 1))
        regular = len(layout) == 1 or (len(set(seps)) == 1 and seps[0] in (" ", "-", ".", "")
                                       and layout in _STANDARD_LAYOUTS)
        if regular:
            return 1.0
        context = has_word(text.before(groups[first].start), _CONTEXT)
        return 0.9 if context else 0.8

    def _swapped(self, text: ScanText, start: int, end: int) -> Iterable[Match]:
        raw = text.text[start : end - 1].rstrip(" -.")
        end = start + len(raw)
        digits = "".join(c for c in raw.translate(_SWAPS) if c.isdigit())
        if sum(c.isdigit() for c in raw) < len(digits) - 3:
            return  # mostly letters: a word, not a disguised number
        if 12 <= len(digits) <= 19 and luhn_ok(digits):
            network = network_of(digits)
            if network:
                yield Match("CREDIT_CARD", start, end, 0.3, digits, self.name, network)


def _inside_longer(text: str, groups: list[Group], first: int, last: int, covered: set[int]) -> bool:
    """A grouped window whose neighbour is another 4-digit group joined by the same separator, and not
    part of another card, is a slice of a longer grouped number (a 22-digit parcel tracking number)."""
    if first == last:
        return False
    sep = text[groups[first].end : groups[first + 1].start]

    def joined(k: int, a: int, b: int, beyond: int) -> bool:
        if not (0 <= k < len(groups)) or k in covered or len(groups[k].digits) != 4:
            return False
        if text[groups[a].end : groups[b].start] != sep:
            return False
        # The neighbour continues this number only if it is the run's edge or is itself chained on.
        if not (0 <= beyond < len(groups)):
            return True
        lo, hi = min(k, beyond), max(k, beyond)
        return text[groups[lo].end : groups[hi].start] == sep

    return joined(first - 1, first - 1, first, first - 2) or joined(last + 1, last, last + 1, last + 2)
