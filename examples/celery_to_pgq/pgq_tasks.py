"""AFTER: celery_tasks.py moved to pgq. The comments name the Celery call each line replaces.

    export DATABASE_URL=postgresql://postgres@127.0.0.1/postgres
    pgq migrate
    pgq worker --app examples.celery_to_pgq.pgq_tasks:app &     # celery -A shop worker (and beat)
    python -m examples.celery_to_pgq.pgq_tasks 42 1999 ada@example.com

The last command enqueues a charge (its first attempt fails and is retried a second
later) and a receipt, waits for both and prints them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import pgq

app = pgq.App()  # Celery("shop", broker=..., backend=...): the database is broker and result store


class GatewayUnavailableError(Exception):
    pass


def charge_with_gateway(order_id: int, amount_cents: int, attempt: int) -> str:
    """Stands in for a payment provider that times out on the first try."""
    if attempt == 1:
        raise GatewayUnavailableError("payment gateway timed out")
    return f"ch_{order_id}_{amount_cents}"


@app.task(queue="payments", max_attempts=5)  # max_retries=4: five attempts in all
def charge_card(order_id: int, amount_cents: int) -> dict[str, Any]:
    try:
        charge_id = charge_with_gateway(order_id, amount_cents, pgq.current_job().attempt)  # self.request.retries + 1
    except GatewayUnavailableError as exc:
        raise pgq.Retry(str(exc), delay=1) from exc  # raise self.retry(exc=exc, countdown=1)
    return {"order_id": order_id, "charge_id": charge_id}


@app.task(queue="emails")
async def send_receipt(order_id: int, email: str) -> dict[str, Any]:
    return {"order_id": order_id, "sent_to": email}


@app.periodic(cron="30 2 * * *", timezone="Europe/Paris")  # beat_schedule; no beat process: the worker's leader
@app.task(queue="reports")
def nightly_report() -> dict[str, Any]:
    return {"report": "orders of the day"}


def checkout(order_id: int, amount_cents: int, email: str) -> tuple[pgq.Job, pgq.Job]:
    # With conn=your_connection both jobs would commit or roll back with the order.
    charge = app.enqueue_sync(  # charge_card.apply_async(args=(...), countdown=1, priority=9)
        "charge_card", {"order_id": order_id, "amount_cents": amount_cents}, delay=1, priority=-9
    )  # pgq: a lower number runs first
    receipt = send_receipt.enqueue_sync(order_id=order_id, email=email)  # send_receipt.delay(order_id, email)
    return charge, receipt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check out one order through pgq")
    parser.add_argument("order_id", type=int)
    parser.add_argument("amount_cents", type=int)
    parser.add_argument("email")
    args = parser.parse_args(argv)
    with app:
        for job in checkout(args.order_id, args.amount_cents, args.email):
            done = job.wait_sync(timeout=60)  # AsyncResult.get(timeout=60); WaitTimeoutError if not final
            if done.state is not pgq.JobState.SUCCEEDED:  # .get() would re-raise; pgq returns the failed job
                print(f"{done.task} {done.state.value}: {done.errors[-1]['message'] if done.errors else ''}")
                return 1
            print(f"{done.task}: {json.dumps(done.result, sort_keys=True)} (attempts: {done.attempt})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
