"""The local sample warehouse: synthetic clients in the shape the queue SQL reads.

`seed_sample_warehouse(clients=N, seed=S, dirty=...)` (re)builds the `billing_queue` table and
makes sure the history table exists. Every row depends only on (seed, row number), so the same
seed gives the same data and a smaller run is a prefix of a larger one.

Phone numbers are fictional: `+1 NPA 555 01XX`, the range reserved for fiction, with a real
area code (NPA) of the client's state so that phone-number time-zone lookups give real answers.
That allows 100 numbers per area code (~35,000 in all), so in a large sample several clients
share a number, as households do.

`--dirty` turns exactly one row in DIRTY_EVERY into a bad row, cycling through DIRTY_KINDS, so
the proportion and the mix of bad rows are known in advance.

Every client also has a fictional date of birth and SSN last four (`sample_identity`), for Grace's
identity check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
import time
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator

from phonenumbers import parse as parse_phone
from phonenumbers import timezone as phone_timezone

from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse

QUEUE_TABLE = "billing_queue"
QUEUE_KEY = "client_id"
QUEUE_COLUMNS: dict[str, str] = {
    "client_id": "VARCHAR(64)",
    "name": "VARCHAR(200)",
    "phone": "VARCHAR(40)",
    "segment": "VARCHAR(64)",
    "days_past_due": "INTEGER",
    "ring_group": "VARCHAR(64)",
    "amount_due": "DECIMAL(12,2)",
    "timezone": "VARCHAR(64)",
    "state": "VARCHAR(2)",
    "postal_code": "VARCHAR(10)",
    "payment_link": "VARCHAR(500)",
    "email": "VARCHAR(254)",
    "owner": "VARCHAR(100)",
    "tier": "VARCHAR(32)",
    "date_of_birth": "VARCHAR(10)",
    "ssn_last4": "VARCHAR(4)",
    "balance_resolved": "INTEGER",
}

# Fictional account owners the sample names for some clients.
ACCOUNT_OWNERS = ("a.rivera", "j.chen", "m.okafor", "s.lindqvist")

# (segment, share of clients, suspension day): the five segments of the outreach lifecycle.
SEGMENTS: tuple[tuple[str, float, int], ...] = (
    ("RED Initial", 0.26, 60),
    ("RED Recurring", 0.24, 60),
    ("Reso Initial", 0.20, 90),
    ("Reso Recurring", 0.16, 90),
    ("Reso Servicing", 0.14, 122),
)

# Real area codes per state (and DC). Hawaii, Alaska, Arizona (no DST), the mountain, central,
# eastern and Pacific zones are all represented; 907, 208, 701 and 605 map to two zones each.
AREA_CODES: dict[str, str] = {
    "AK": "907",
    "AL": "205 251 256 334 659 938",
    "AR": "327 479 501 870",
    "AZ": "480 520 602 623 928",
    "CA": "209 213 279 310 323 341 350 369 408 415 424 442 510 530 559 562 619 626 628 650 657 661 669 707 714 738 747 760 805 818 820 831 840 858 909 916 925 949 951",
    "CO": "303 719 720 748 970 983",
    "CT": "203 475 860 959",
    "DC": "202 771",
    "DE": "302",
    "FL": "239 305 321 324 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 904 941 954",
    "GA": "229 404 470 478 678 706 762 770 912 943",
    "HI": "808",
    "IA": "319 515 563 641 712",
    "ID": "208 986",
    "IL": "217 224 309 312 331 447 464 618 630 708 730 773 779 815 847 872",
    "IN": "219 260 317 463 574 765 812 930",
    "KS": "316 620 785 913",
    "KY": "270 364 502 606 859",
    "LA": "225 318 337 504 985",
    "MA": "339 351 413 508 617 774 781 857 978",
    "MD": "227 240 301 410 443 667",
    "ME": "207",
    "MI": "231 248 269 313 517 586 616 734 810 906 947 989",
    "MN": "218 320 507 612 651 763 952",
    "MO": "235 314 417 557 573 636 660 816 975",
    "MS": "228 601 662 769",
    "MT": "406",
    "NC": "252 336 472 704 743 828 910 919 980 984",
    "ND": "701",
    "NE": "308 402 531",
    "NH": "603",
    "NJ": "201 551 609 640 732 848 856 862 908 973",
    "NM": "505 575",
    "NV": "702 725 775",
    "NY": "212 315 329 332 347 363 516 518 585 607 631 646 680 716 718 838 845 914 917 929 934",
    "OH": "216 220 234 283 326 330 380 419 440 513 567 614 740 937",
    "OK": "405 539 572 580 918",
    "OR": "458 503 541 971",
    "PA": "215 223 267 272 412 445 484 570 582 610 717 724 814 835 878",
    "RI": "401",
    "SC": "803 821 839 843 854 864",
    "SD": "605",
    "TN": "423 615 629 731 865 901 931",
    "TX": "210 214 254 281 325 346 361 409 430 432 469 512 682 713 726 737 806 817 830 832 903 915 936 940 945 956 972 979",
    "UT": "385 435 801",
    "VA": "276 434 540 571 686 703 757 804 826 948",
    "VT": "802",
    "WA": "206 253 360 425 509 564",
    "WI": "262 274 353 414 534 608 715 920",
    "WV": "304 681",
    "WY": "307",
}

# The zone a warehouse would record for a client whose area code spans two zones.
_PRIMARY_ZONE = {"AK": "America/Anchorage", "ID": "America/Boise", "ND": "America/Chicago", "SD": "America/Chicago"}

# First three ZIP digits per state (a range; postal codes are plausible, not real addresses).
ZIP_PREFIXES: dict[str, tuple[int, int]] = {
    "AK": (995, 999), "AL": (350, 369), "AR": (716, 729), "AZ": (850, 865), "CA": (900, 961),
    "CO": (800, 816), "CT": (60, 69), "DC": (200, 205), "DE": (197, 199), "FL": (320, 349),
    "GA": (300, 319), "HI": (967, 968), "IA": (500, 528), "ID": (832, 838), "IL": (600, 629),
    "IN": (460, 479), "KS": (660, 679), "KY": (400, 427), "LA": (700, 714), "MA": (10, 27),
    "MD": (206, 219), "ME": (39, 49), "MI": (480, 499), "MN": (550, 567), "MO": (630, 658),
    "MS": (386, 397), "MT": (590, 599), "NC": (270, 289), "ND": (580, 588), "NE": (680, 693),
    "NH": (30, 38), "NJ": (70, 89), "NM": (870, 884), "NV": (889, 898), "NY": (100, 149),
    "OH": (430, 458), "OK": (730, 749), "OR": (970, 979), "PA": (150, 196), "RI": (28, 29),
    "SC": (290, 299), "SD": (570, 577), "TN": (370, 385), "TX": (750, 799), "UT": (840, 847),
    "VA": (201, 246), "VT": (50, 59), "WA": (980, 994), "WI": (530, 549), "WV": (247, 268),
    "WY": (820, 831),
}

FIRST_NAMES = (
    "Avery", "Jordan", "Morgan", "Riley", "Casey", "Taylor", "Quinn", "Rowan", "Emerson", "Harper",
    "Maya", "Elena", "Sofia", "Amara", "Priya", "Grace", "Naomi", "Lucia", "Hana", "Zara",
    "Mateo", "Diego", "Liam", "Noah", "Ethan", "Omar", "Kenji", "Malik", "Andre", "Samuel",
    "Rosa", "Ines", "Chloe", "Ava", "Leah", "Miriam", "Tomas", "Felix", "Arjun", "Jamal",
    "José", "Zoë", "Siobhán", "Renée", "Björn", "Chidi", "Anaïs", "Nguyen", "Aiyana", "Koa",
)
LAST_NAMES = (
    "Alvarez", "Brooks", "Chen", "Delgado", "Ellison", "Fischer", "Garcia", "Hughes", "Ibrahim", "Jensen",
    "Kowalski", "Lopez", "Mensah", "Nakamura", "Okafor", "Patel", "Quintero", "Rossi", "Sullivan", "Tran",
    "Underwood", "Vasquez", "Whitaker", "Xu", "Yamamoto", "Zimmerman", "O'Brien", "Muñoz", "Castellanos",
    "Harrington", "Bergström", "Nowak", "Haddad", "Kim", "Singh", "Baptiste", "Fitzgerald", "Morales",
    "Novak", "Reyes", "St. James", "Van der Berg", "Abernathy", "Cruz", "Dubois", "Esposito", "Ferreira",
)

# --dirty: one row in DIRTY_EVERY is bad, the kinds in rotation.
DIRTY_EVERY = 20
DIRTY_KINDS = (
    "invalid_phone",
    "unknown_segment",
    "missing_name",
    "missing_phone",
    "missing_segment",
    "missing_days_past_due",
    "days_past_due_out_of_range",
    "missing_ring_group",
)
_INVALID_PHONES = ("555-0100", "+1 000 555 0100", "not a phone", "12345", "+1 212 555 01", "(800) 555-01000")
_UNKNOWN_SEGMENTS = ("Gold Premium", "RED Initital", "Legacy", "Reso Servicng")

RESOLVED_SHARE = 0.03  # clients whose balance got resolved: the default queue SQL skips them


@dataclass
class SeedReport:
    clients: int
    seed: int
    dirty: bool
    warehouse: str
    queue_table: str
    history_table: str
    rows_written: int = 0
    dirty_rows: dict[str, int] = field(default_factory=dict)
    resolved_rows: int = 0
    states: int = 0
    time_zones: int = 0
    elapsed_seconds: float = 0.0


def _zone_table() -> dict[str, tuple[str, ...]]:
    zones: dict[str, tuple[str, ...]] = {}
    for codes in AREA_CODES.values():
        for npa in codes.split():
            zones[npa] = tuple(phone_timezone.time_zones_for_number(parse_phone(f"+1{npa}5550100")))
    return zones


_STATES = tuple(sorted(AREA_CODES))
# States weighted by how many area codes they have (a rough stand-in for population).
_STATE_WEIGHTS = tuple(len(AREA_CODES[s].split()) for s in _STATES)
_SEGMENT_NAMES = tuple(s[0] for s in SEGMENTS)
_SEGMENT_WEIGHTS = tuple(s[1] for s in SEGMENTS)
_SUSPENSION_DAY = {s[0]: s[2] for s in SEGMENTS}


def _row_random(seed: int, index: int) -> random.Random:
    # One generator per row, seeded from (seed, row) only: rows never depend on the run's size.
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _email(first: str, last: str, index: int) -> str:
    local = unicodedata.normalize("NFKD", f"{first}.{last}{index % 97}").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9.]", "", local.lower()) + "@example.com"


def _days_past_due(rng: random.Random) -> int:
    # Most accounts are recently past due and the count thins out towards cancellation; a flat
    # share keeps every day of the 180 populated.
    if rng.random() < 0.25:
        return rng.randint(0, 180)
    return min(180, int(rng.expovariate(1 / 40)))


def _amount_due(rng: random.Random, days_past_due: int) -> Decimal:
    base = rng.lognormvariate(5.6, 0.6)  # median around $270
    months_missed = 1 + days_past_due // 30
    amount = min(base * (1 + 0.35 * (months_missed - 1)), 25_000.0)
    return Decimal(f"{max(amount, 19.0):.2f}")


def sample_identity(*, client_id: str) -> dict[str, str]:
    """A fictional date of birth and SSN last four for a sample client, from its own random, so
    adding them changed no other value. The sandbox's simulated clients answer identity checks
    from the same function: a client knows their own details. It depends on the client id alone,
    so the simulator need not know which seed the sample warehouse was made with."""
    rng = random.Random(f"{client_id}:identity")
    born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randint(0, 365 * 52))
    return {"date_of_birth": born.isoformat(), "ssn_last4": f"{rng.randint(1, 9999):04d}"}


def sample_row(seed: int, index: int, *, dirty: bool, zones: dict[str, tuple[str, ...]]) -> tuple[dict[str, Any], str | None]:
    """Row `index` of the sample (0-based) and, when it was made bad, which kind of bad."""
    rng = _row_random(seed, index)
    # The first rows visit every state once, so even a small sample spans every time zone.
    state = _STATES[index] if index < len(_STATES) else rng.choices(_STATES, weights=_STATE_WEIGHTS)[0]
    npa = rng.choice(AREA_CODES[state].split())
    phone = f"+1{npa}5550{rng.randint(100, 199)}"
    segment = _SEGMENT_NAMES[index % 5] if index < 5 else rng.choices(_SEGMENT_NAMES, weights=_SEGMENT_WEIGHTS)[0]
    days = _days_past_due(rng)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    client_id = f"C{index + 1:08d}"
    candidates = zones[npa]
    zone = candidates[0] if len(candidates) == 1 else _PRIMARY_ZONE.get(state, candidates[0])
    low, high = ZIP_PREFIXES[state]
    token = hashlib.blake2b(f"{seed}:{client_id}:pay".encode(), digest_size=12).hexdigest()
    row: dict[str, Any] = {
        "client_id": client_id,
        "name": f"{first} {last}",
        "phone": phone,
        "segment": segment,
        "days_past_due": days,
        "ring_group": "billing" if days < _SUSPENSION_DAY[segment] else "resurrection",
        "amount_due": _amount_due(rng, days),
        # Not every warehouse row carries every optional column: the loader must fall back from
        # time zone to state/postal code to the phone's area code.
        "timezone": zone if rng.random() < 0.7 else None,
        "state": state if index < len(_STATES) or rng.random() < 0.9 else None,
        "postal_code": f"{rng.randint(low, high):03d}{rng.randint(0, 99):02d}" if rng.random() < 0.8 else None,
        "payment_link": f"https://pay.example.com/invoice/{token}" if rng.random() < 0.5 else None,
        "email": _email(first, last, index) if rng.random() < 0.7 else None,
        "balance_resolved": 1 if rng.random() < RESOLVED_SHARE else 0,
    }
    # Owner and tier draw from a random of their own, so adding them changed no other value.
    extra = random.Random(f"{seed}:{client_id}:owner")
    row["owner"] = extra.choice(ACCOUNT_OWNERS) if extra.random() < 0.3 else None
    row["tier"] = "platinum" if float(row["amount_due"]) >= 2500 else extra.choice(("standard", "standard", "gold"))
    row.update(sample_identity(client_id=client_id))
    kind = None
    if dirty and index % DIRTY_EVERY == DIRTY_EVERY - 1:
        kind = DIRTY_KINDS[(index // DIRTY_EVERY) % len(DIRTY_KINDS)]
        _make_dirty(row, kind, rng)
    return row, kind


def _make_dirty(row: dict[str, Any], kind: str, rng: random.Random) -> None:
    if kind == "invalid_phone":
        row["phone"] = rng.choice(_INVALID_PHONES)
    elif kind == "unknown_segment":
        row["segment"] = rng.choice(_UNKNOWN_SEGMENTS)
    elif kind == "days_past_due_out_of_range":
        row["days_past_due"] = rng.choice((-3, 181, 250, 365))
    elif kind.startswith("missing_"):
        row[kind.removeprefix("missing_")] = None
    row["balance_resolved"] = 0  # a bad row the query filters out would not exercise the loader


def sample_rows(*, clients: int, seed: int, dirty: bool) -> Iterator[tuple[dict[str, Any], str | None]]:
    zones = _zone_table()
    for index in range(clients):
        yield sample_row(seed, index, dirty=dirty, zones=zones)


def seed_sample_warehouse(
    *, clients: int, seed: int = 1, dirty: bool = False, history_table: str = warehouse.DEFAULT_HISTORY_TABLE, chunk_rows: int = 20_000
) -> SeedReport:
    """Rebuild the queue table with `clients` synthetic clients and ensure the history table.

    Refuses to run against Databricks: the sample warehouse is local only.
    """
    if clients < 0:
        raise ValueError("clients must be zero or more")
    started = time.monotonic()
    target = warehouse.target()
    if target.dialect == "databricks":
        raise IntegrationError(
            "seed_warehouse builds the local sample warehouse; it refuses to write to Databricks. "
            "Unset DATABRICKS_* or point WAREHOUSE_URL at a local database.",
            permanent=True,
            vendor=warehouse.VENDOR,
        )
    report = SeedReport(
        clients=clients, seed=seed, dirty=dirty, warehouse=warehouse.describe(), queue_table=QUEUE_TABLE, history_table=history_table
    )
    warehouse.drop_table(QUEUE_TABLE)
    warehouse.ensure_table(QUEUE_TABLE, QUEUE_COLUMNS, key=QUEUE_KEY)
    warehouse.ensure_table(history_table, warehouse.HISTORY_COLUMNS, key=warehouse.HISTORY_KEY)
    columns = list(QUEUE_COLUMNS)
    states: set[str] = set()
    zones_seen: set[str] = set()
    chunk: list[dict[str, Any]] = []
    for row, kind in sample_rows(clients=clients, seed=seed, dirty=dirty):
        if kind:
            report.dirty_rows[kind] = report.dirty_rows.get(kind, 0) + 1
        report.resolved_rows += row["balance_resolved"]
        if row["state"]:
            states.add(row["state"])
        if row["timezone"]:
            zones_seen.add(row["timezone"])
        chunk.append(row)
        if len(chunk) >= chunk_rows:
            report.rows_written += warehouse.write_rows(QUEUE_TABLE, chunk, key=QUEUE_KEY, columns=columns)
            chunk = []
    if chunk:
        report.rows_written += warehouse.write_rows(QUEUE_TABLE, chunk, key=QUEUE_KEY, columns=columns)
    report.states = len(states)
    report.time_zones = len(zones_seen)
    report.elapsed_seconds = round(time.monotonic() - started, 2)
    return report

