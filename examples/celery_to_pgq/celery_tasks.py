"""BEFORE: a shop's Celery task module, as it looked before moving to pgq.

Kept for comparison with pgq_tasks.py, line by line. Celery is not a dependency of pgq:
this module only imports it when it is installed, and nothing in pgq imports this module.
"""

from __future__ import annotations

from typing import Any

try:
    from celery import Celery
    from celery.result import AsyncResult
    from celery.schedules import crontab
except ImportError as exc:  # pragma: no cover - read this file, run pgq_tasks.py
    raise ImportError("celery_tasks.py is the Celery original, for reading: run pgq_tasks.py") from exc

app = Celery("shop", broker="redis://localhost:6379/0", backend="redis://localhost:6379/1")
app.conf.task_acks_late = True  # at-least-once: a task whose worker dies is delivered again
app.conf.beat_schedule = {  # needs a separate `celery -A shop beat` process
    "nightly-report": {"task": "nightly_report", "schedule": crontab(hour=2, minute=30)},
}
app.conf.timezone = "Europe/Paris"


class GatewayUnavailableError(Exception):
    pass


def charge_with_gateway(order_id: int, amount_cents: int, attempt: int) -> str:
    if attempt == 1:
        raise GatewayUnavailableError("payment gateway timed out")
    return f"ch_{order_id}_{amount_cents}"


@app.task(bind=True, name="charge_card", queue="payments", max_retries=4)
def charge_card(self: Any, order_id: int, amount_cents: int) -> dict[str, Any]:
    try:
        charge_id = charge_with_gateway(order_id, amount_cents, self.request.retries + 1)
    except GatewayUnavailableError as exc:
        raise self.retry(exc=exc, countdown=1) from exc
    return {"order_id": order_id, "charge_id": charge_id}


@app.task(name="send_receipt", queue="emails")
def send_receipt(order_id: int, email: str) -> dict[str, Any]:
    return {"order_id": order_id, "sent_to": email}


@app.task(name="nightly_report", queue="reports")
def nightly_report() -> dict[str, Any]:
    return {"report": "orders of the day"}


def checkout(order_id: int, amount_cents: int, email: str) -> tuple[AsyncResult, AsyncResult]:
    # Queued in Redis at once, even if the caller's database transaction rolls back later.
    charge = charge_card.apply_async(args=(order_id, amount_cents), countdown=1, priority=9)
    receipt = send_receipt.delay(order_id, email)
    return charge, receipt


def main() -> None:
    charge, receipt = checkout(42, 1999, "ada@example.com")
    print(charge.get(timeout=60))  # re-raises the task's exception if it failed
    print(receipt.get(timeout=60))
    # revoke: charge_card.AsyncResult(charge.id).revoke(terminate=True)
