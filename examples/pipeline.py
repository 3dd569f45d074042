"""A pipeline as one workflow: scan each target in parallel, merge the findings, write
the report. Every step is a job; the workflow is written in one transaction.

    pgq worker --app examples.pipeline:app     # a worker for these tasks
    python -m examples.pipeline                # enqueue the workflow, wait, print it

tests/test_example_pipeline.py runs it end to end and compares what it prints with the
README's "Workflows" section.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pgq
from pgq import chain, group

app = pgq.App()


@app.task
def scan(host: str) -> dict[str, Any]:
    """A stand-in for a real scan (same host, same findings)."""
    return {"host": host, "open_ports": sorted({22, 80 + len(host), 8000 + 7 * len(host)})}


@app.task
def merge() -> dict[str, Any]:
    """Fan-in: one result per scan, in the order the scans were given."""
    findings = [parent.result for parent in pgq.current_job().parents]
    return {"hosts": len(findings), "open_ports": sum(len(f["open_ports"]) for f in findings)}


@app.task
def report(title: str) -> str:
    merged = pgq.current_job().results["merge"]  # a parent's result, by step name
    return f"{title}: {merged['open_ports']} open ports on {merged['hosts']} hosts"


def weekly_scan(targets: list[str]) -> pgq.canvas.Chain:
    return chain(
        group(*(scan.step(host=host) for host in targets)),
        merge.step(),
        report.step(title="weekly scan"),
    )


async def main() -> None:
    async with app:
        workflow = await app.enqueue_workflow(weekly_scan(["db1", "web1", "web2.internal"]), name="weekly-scan")
        print(f"{workflow.name}: {workflow.status.steps} steps, {workflow.status.queued} queued")
        done = await workflow.wait(timeout=60)
        for step in done.steps:
            print(f"  {step.step:<8} {step.state:<10} {step.result}")
        print(f"{done.state}: {done.result}")


if __name__ == "__main__":
    asyncio.run(main())
