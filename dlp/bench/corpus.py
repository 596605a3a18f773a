"""A seeded synthetic corpus of call-center messages with ground truth, for `dlp bench` and tests.

About 20% of the messages carry sensitive values (cards of every network in several layouts, SSNs,
IBANs, e-mail addresses, phone numbers, secrets); every message may carry hard negatives that look
sensitive and are not: Luhn-failing 16-digit order numbers, timestamps, parcel tracking numbers,
version strings, invoice numbers shaped like phone numbers, amounts, case numbers. Each message lists
the (entity, normalised value) pairs a perfect detector reports, so recall and precision follow.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

import phonenumbers

from detectors._numbers import luhn_ok
from detectors.bank import IBAN_LENGTHS

MEASURED_ENTITIES = ("CREDIT_CARD", "US_SSN", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER", "SECRET")


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    truth: frozenset[tuple[str, str]] = frozenset()
    hard_negatives: tuple[str, ...] = field(default=())  # the kinds of look-alikes the text carries


FIRST = ["Maria", "James", "Priya", "Chen", "Fatima", "Lucas", "Aisha", "Tom", "Elena", "Kwame", "Sofia", "Raj"]
LAST = ["Garcia", "Smith", "Patel", "Wang", "Khan", "Silva", "Okafor", "Brown", "Rossi", "Mensah", "Lopez", "Iyer"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "client-bank.example", "mail.example.org", "acme.co.uk"]
OPENERS = [
    "Hi {name},", "Hello {name},", "Dear {name},", "Good morning {name},", "Hi team,", "Hello,",
]
BODY = [
    "Thanks for calling us today about your recent order.",
    "As discussed on the phone, I have escalated the issue to our billing department.",
    "The customer asked us to update the delivery address on the account.",
    "Please find the summary of the call below.",
    "We apologise for the delay and have applied a courtesy credit.",
    "The refund should appear within five to seven business days.",
    "Could you confirm the details so that we can close the ticket?",
    "The caller was verified with the usual security questions.",
    "I have attached the notes from the conversation for your records.",
    "Let me know if anything else is needed before the end of the shift.",
    "The system was slow again this afternoon, so some calls were transferred.",
    "Our records show the subscription renews at the end of the month.",
]
CLOSERS = ["Best regards,\n{agent}", "Kind regards,\n{agent}\nCustomer Care", "Thanks,\n{agent}", "Cheers,\n{agent}"]

CARD_PREFIXES = {
    "visa": (["4"], [16, 16, 16, 13, 19]),
    "mastercard": (["51", "52", "53", "54", "55", "2221", "2300", "2500", "2720"], [16]),
    "amex": (["34", "37"], [15]),
    "discover": (["6011", "644", "65"], [16]),
    "jcb": (["3528", "3555", "3589"], [16]),
    "diners": (["36", "38", "300", "305"], [14]),
    "unionpay": (["62"], [16, 19]),
    "maestro": (["6759", "5018", "6304"], [16, 19]),
}
US_AREA_CODES = ["212", "213", "305", "312", "415", "469", "512", "617", "646", "702", "718", "808", "917"]


def _luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        if luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


def _group(digits: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(digits[i : i + size])
        i += size
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(p for p in out if p)


def card(rng: random.Random) -> tuple[str, str]:
    network = rng.choice(list(CARD_PREFIXES))
    prefixes, lengths = CARD_PREFIXES[network]
    digits = _luhn_complete(rng, rng.choice(prefixes), rng.choice(lengths))
    if network == "amex":
        sizes = [4, 6, 5]
    elif network == "diners":
        sizes = [4, 6, 4]
    else:
        sizes = [4, 4, 4, 4, 3]
    style = rng.random()
    shown = digits if style < 0.25 else _group(digits, sizes, rng.choice([" ", " ", "-", "-", "."]))
    template = rng.choice([
        "The card on file is {v}.", "Customer read out card number {v}, exp 09/28.", "CC: {v}",
        "Please charge {v} for the renewal.", "{v} is the new card, CVV given verbally.",
    ])
    return template.format(v=shown), digits


def ssn(rng: random.Random) -> tuple[str, str]:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    digits = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    style = rng.random()
    if style < 0.6:
        shown = f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"
    elif style < 0.85:
        shown = f"{digits[:3]} {digits[3:5]} {digits[5:]}"
    else:
        shown = digits
    template = rng.choice(["SSN {v} verified.", "Her social security number is {v}.", "ssn: {v}",
                           "Verified identity with SSN {v} and date of birth."])
    return template.format(v=shown), digits


def iban(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(["GB", "DE", "FR", "ES", "NL", "IT", "BE", "CH", "PL", "IE"])
    n = IBAN_LENGTHS[country] - 4
    if country in ("GB", "NL", "IE"):
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            rng.choice(string.digits) for _ in range(n - 4))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(n))
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    value = f"{country}{check:02d}{bban}"
    shown = " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.6 else value
    template = rng.choice(["Refund to IBAN {v} please.", "Bank details: {v}", "IBAN: {v} (account holder confirmed)"])
    return template.format(v=shown), value


def email(rng: random.Random) -> tuple[str, str]:
    address = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
    template = rng.choice(["Her email is {v}.", "Send the receipt to {v}", "Contact: {v}"])
    return template.format(v=address), address.lower()


def phone(rng: random.Random) -> tuple[str, str]:
    while True:
        if rng.random() < 0.7:
            number = f"{rng.choice(US_AREA_CODES)}{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(0, 9999):04d}"
            parsed = phonenumbers.parse(number, "US")
            a, b, c = number[:3], number[3:6], number[6:]
            shown = rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", f"{a}.{b}.{c}"])
        else:
            number = f"20{rng.randint(7, 8)}{rng.randint(0, 999):03d}{rng.randint(0, 9999):04d}"
            parsed = phonenumbers.parse("+44" + number)
            a, b, c = number[:2], number[2:6], number[6:]
            shown = rng.choice([f"+44 {a} {b} {c}", f"0{a} {b} {c}"])
        if phonenumbers.is_valid_number(parsed):
            break
    template = rng.choice(["Call me back on {v}.", "Best number to reach her: {v}", "Phone: {v}"])
    return template.format(v=shown), phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def secret(rng: random.Random) -> tuple[str, str]:
    kind = rng.random()
    alnum = string.ascii_letters + string.digits
    if kind < 0.4:
        value = "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        return f"Use access key {value} for the export job.", value
    if kind < 0.7:
        value = "ghp_" + "".join(rng.choice(alnum) for _ in range(36))
        return f"token for the CI: {value}", value
    value = "".join(rng.choice(alnum + "!#%&") for _ in range(14))
    return f"The portal login is agent7 and password={value}", value


GENERATORS = {"CREDIT_CARD": card, "US_SSN": ssn, "IBAN_CODE": iban, "EMAIL_ADDRESS": email,
              "PHONE_NUMBER": phone, "SECRET": secret}
WEIGHTS = {"CREDIT_CARD": 4, "US_SSN": 3, "IBAN_CODE": 2, "EMAIL_ADDRESS": 2, "PHONE_NUMBER": 2, "SECRET": 1}


def _order_number(rng: random.Random) -> str:
    while True:
        digits = "4" + "".join(rng.choice(string.digits) for _ in range(15))
        if not luhn_ok(digits):
            return digits


HARD_NEGATIVES = {
    "luhn_invalid_16": lambda r: f"Order #{_group(_order_number(r), [4, 4, 4, 4], r.choice([' ', '-', '']))} shipped.",
    "timestamp": lambda r: f"Logged at 2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} "
                           f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d} UTC.",
    "tracking_ups": lambda r: "Tracking 1Z" + "".join(r.choice(string.ascii_uppercase + string.digits)
                                                      for _ in range(16)),
    "tracking_usps": lambda r: "USPS tracking " + _group("9400" + "".join(r.choice(string.digits) for _ in range(18)),
                                                          [4] * 5, " "),
    "version": lambda r: f"Agent desktop updated to version {r.randint(1, 12)}.{r.randint(0, 20)}.{r.randint(0, 9)}."
                         f"{r.randint(0, 999)} this morning.",
    "invoice_phone_like": lambda r: f"Invoice {r.choice(US_AREA_CODES)}-{r.randint(200, 999)}-"
                                    f"{r.randint(0, 9999):04d} is overdue.",
    "amount": lambda r: f"The balance is ${r.randint(1, 99)},{r.randint(0, 999):03d}.{r.randint(0, 99):02d}.",
    "case_number": lambda r: f"Case {r.randint(10000000, 99999999)} was reopened.",
    "nine_digits": lambda r: f"Customer id {r.randint(100000000, 899999999)} in the CRM.",
}


def generate(size_bytes: int, seed: int = 7, pii_share: float = 0.2) -> list[Sample]:
    """Messages until their text adds up to `size_bytes` (UTF-8)."""
    rng = random.Random(seed)
    entities, weights = list(WEIGHTS), list(WEIGHTS.values())
    out: list[Sample] = []
    total = 0
    while total < size_bytes:
        name = rng.choice(FIRST)
        lines = [rng.choice(OPENERS).format(name=name)]
        sentences = rng.sample(BODY, rng.randint(2, 5))
        truth: set[tuple[str, str]] = set()
        negatives: list[str] = []
        if rng.random() < pii_share:
            for entity in rng.choices(entities, weights, k=rng.randint(1, 3)):
                sentence, value = GENERATORS[entity](rng)
                sentences.insert(rng.randint(0, len(sentences)), sentence)
                truth.add((entity, value))
        if rng.random() < 0.5:
            for kind in rng.sample(list(HARD_NEGATIVES), rng.randint(1, 3)):
                sentences.insert(rng.randint(0, len(sentences)), HARD_NEGATIVES[kind](rng))
                negatives.append(kind)
        lines.append(" ".join(sentences))
        agent = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        lines.append(rng.choice(CLOSERS).format(agent=agent))
        text = "\n\n".join(lines)
        out.append(Sample(text, frozenset(truth), tuple(negatives)))
        total += len(text.encode())
    return out
