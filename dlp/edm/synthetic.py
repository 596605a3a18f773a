"""Synthetic customer exports for tests, benchmarks and demos (no real person in them)."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

FIRST = ("James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
         "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
         "Chloé", "Siobhán", "José", "Zoë", "Ahmed", "Wei", "Olga", "Kwame", "Priya", "Mateo")
LAST = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "O'Brien", "Nguyen", "Kowalski", "Okafor", "Müller", "Rossi", "Haddad", "Ivanova", "Tanaka", "Silva")
CITIES = ("Springfield", "Riverside", "Franklin", "Greenville", "Bristol", "Clinton", "Fairview", "Salem")
COLUMNS = "name=name,account=account,email=email,phone=phone,dob=date,zip=postcode,city=text"
HEADER = ["customer_id", "name", "account", "email", "phone", "dob", "zip", "city"]


@dataclass(frozen=True, slots=True)
class Customer:
    name: str
    account: str
    email: str
    phone: str  # US national format, "(555) 201-4567"
    dob: str  # ISO
    zip: str
    city: str


def customer(i: int, rng: random.Random) -> Customer:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    # The account number embeds `i` so that every record is unique however many are generated.
    account = f"{40_000_000 + i * 7919 % 60_000_000 + i // 60_000_000:08d}{rng.randrange(10)}"
    area, exchange = rng.randrange(201, 990), rng.randrange(200, 999)
    return Customer(
        name=f"{first} {last}",
        account=account,
        email=f"{first.lower()[:1]}{''.join(c for c in last.lower() if c.isalpha())}{i}@mail.example",
        phone=f"({area}) {exchange}-{i % 10_000:04d}",
        dob=f"{rng.randrange(1940, 2005)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        zip=f"{rng.randrange(10_000, 99_999)}",
        city=rng.choice(CITIES),
    )


def customers(count: int, seed: int = 7) -> list[Customer]:
    rng = random.Random(seed)
    return [customer(i, rng) for i in range(count)]


def write_export(path: Path, count: int, seed: int = 7) -> list[Customer]:
    """Write a CSV export of `count` customers; returns the first hundred (for building test messages)."""
    rng = random.Random(seed)
    sample: list[Customer] = []
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(count):
            c = customer(i, rng)
            if i < 100:
                sample.append(c)
            out.writerow([f"C{i:07d}", c.name, c.account, c.email, c.phone, c.dob, c.zip, c.city])
    return sample
