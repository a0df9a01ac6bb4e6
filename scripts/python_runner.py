#!/usr/bin/env python3
"""The runner a user might write instead of nxcampaign, for the benchmark's
baseline: read a contact file with `csv`, normalise each number with
`phonenumbers` (country column, else a default), keep the first row of each
number, and store the rows with `sqlite3` in one transaction.

    python3 scripts/python_runner.py contacts.csv ledger.db HK
"""
import csv
import hashlib
import sqlite3
import sys

import phonenumbers


def main(path, db, default_country):
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE orders (order_id TEXT PRIMARY KEY, phone TEXT UNIQUE, name TEXT,"
        " state TEXT, reason TEXT, line INTEGER)"
    )
    rows, seen = [], set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for line, row in enumerate(reader, start=2):
            country = (row.get("country") or "").strip() or default_country
            try:
                number = phonenumbers.parse(row["phone"], country)
                valid = phonenumbers.is_valid_number(number)
            except phonenumbers.NumberParseException:
                valid = False
            if not valid:
                rows.append((f"invalid-{line}", None, row["name"], "invalid", "not a number", line))
                continue
            digits = f"{number.country_code}{number.national_number}"
            order_id = hashlib.md5(digits.encode()).hexdigest().upper()
            if digits in seen:
                rows.append((f"dup-{line}", None, row["name"], "duplicate", digits, line))
                continue
            seen.add(digits)
            rows.append((order_id, digits, row["name"], "pending", None, line))
    with conn:
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
