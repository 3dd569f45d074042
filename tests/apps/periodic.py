"""An app with periodic tasks, for `pgq worker` processes in the schedule tests.

``every_second`` fires every second; each run is appended to PGQ_TEST_RUN_LOG like
the tasks of tests/apps/basic.py, so a test can count executions too.
"""

from __future__ import annotations

import pgq
from tests.apps.basic import record_run

app = pgq.App()


@app.periodic(every=1)
@app.task(queue="periodic")
async def every_second() -> None:
    record_run()


@app.periodic(cron="30 2 * * *", timezone="Europe/Paris", args={"kind": "daily"}, missed="skip")
@app.task(queue="periodic", max_attempts=2)
def nightly_report(kind: str) -> str:
    return kind


app.schedule("nightly_report", name="weekly_report", cron="@weekly", args={"kind": "weekly"}, priority=-1)
