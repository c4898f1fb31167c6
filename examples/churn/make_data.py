"""Writes customers.csv, the churn example's data: synthetic CRM rows, the same on every run.

    python examples/churn/make_data.py [ROWS] [OUT]

Churn is drawn from a logistic model of the columns (short tenure, month-to-month
contracts, many support calls and high charges raise it), so a model has something
real to learn and a perfect score is impossible. Emails are fake (example.com) and
a few total_charges are missing, as in a real export.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from pathlib import Path

CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENTS = ("card", "bank-transfer", "check")


def rows(count: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for i in range(count):
        contract = rng.choices(CONTRACTS, weights=(0.55, 0.25, 0.20))[0]
        payment = rng.choices(PAYMENTS, weights=(0.5, 0.35, 0.15))[0]
        tenure = max(0, int(rng.expovariate(1 / (30 if contract == "month-to-month" else 45))))
        tenure = min(tenure, 120)
        monthly = round(max(15.0, rng.gauss(65, 25)), 2)
        total = round(monthly * tenure * rng.uniform(0.95, 1.05), 2)
        calls = min(12, int(rng.expovariate(1 / 1.5)))
        score = 2.2 * (
            -0.9
            - 0.045 * tenure
            + {"month-to-month": 1.4, "one-year": 0.0, "two-year": -1.3}[contract]
            + {"card": 0.0, "bank-transfer": -0.2, "check": 0.6}[payment]
            + 0.35 * calls
            + 0.018 * (monthly - 65)
        )
        churned = rng.random() < 1 / (1 + math.exp(-score))
        out.append(
            {
                "customer_id": f"C{i + 1:06d}",
                "email": "" if rng.random() < 0.02 else f"customer{i + 1}@example.com",
                "tenure_months": tenure,
                "monthly_charges": monthly,
                "total_charges": "" if rng.random() < 0.005 else total,
                "contract": contract,
                "payment_method": payment,
                "support_calls": calls,
                "churned": "true" if churned else "false",
            }
        )
    return out


def write(path: Path, count: int) -> None:
    data = rows(count)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(data[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
    temporary.replace(path)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("customers.csv")
    write(out, count)
