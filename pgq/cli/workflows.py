"""`pgq workflows`, `pgq workflow ID [--cancel | --retry]`, `pgq enqueue-workflow FILE`:
workflows (pgq/workflow.py) as tables, and their cancel and retry."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pgq.app import App
from pgq.cli.output import local_time, print_list, print_table, summary
from pgq.db.workflows import WorkflowStatus
from pgq.errors import ConfigError
from pgq.workflow import Workflow

_COUNTED = ("waiting", "queued", "running", "succeeded", "failed", "cancelled")


def counts(status: WorkflowStatus) -> str:
    """'3 steps: 1 succeeded, 2 waiting' (states with no step left out)."""
    parts = [f"{getattr(status, state)} {state}" for state in _COUNTED if getattr(status, state)]
    return f"{status.steps} step{'s' if status.steps != 1 else ''}: {', '.join(parts) or 'none'}"


def cmd_workflows(args: argparse.Namespace) -> int:
    with App() as app:
        rows = app.list_workflows_sync(limit=args.limit)
    print_list(
        rows,
        as_json=args.json,
        empty="no workflows",
        header=["ID", "NAME", "STATE", "STEPS", "CREATED", "FINISHED"],
        row=lambda w: [
            str(w.id),
            w.name,
            w.state,
            counts(w),
            local_time(w.created_at),
            local_time(w.finished_at),
        ],
    )
    return 0


def show(workflow: Workflow) -> None:
    status = workflow.status
    print(f"workflow {status.id} ({status.name}): {status.state}, {counts(status)}")
    print(f"created {local_time(status.created_at)}, finished {local_time(status.finished_at)}")
    rows = [["ID", "STEP", "TASK", "STATE", "PARENTS LEFT", "ATTEMPT", "RESULT / LAST ERROR"]]
    for job in workflow.steps:
        rows.append(
            [
                str(job.id),
                job.step or "-",
                job.task,
                job.state.value,
                str(workflow.parents_left.get(job.id, "-")),
                f"{job.attempt}/{job.max_attempts}",
                summary(job),
            ]
        )
    print()
    print_table(rows)


def cmd_workflow(args: argparse.Namespace) -> int:
    with App() as app:
        if args.cancel:
            workflow = app.cancel_workflow_sync(args.id)
        elif args.retry:
            workflow = app.retry_workflow_sync(args.id)
        else:
            workflow = app.get_workflow_sync(args.id)
    if args.json:
        print(json.dumps(workflow.to_dict(), indent=2))
    else:
        show(workflow)
    return 0


def cmd_enqueue_workflow(args: argparse.Namespace) -> int:
    """The body of POST /workflows, from a file or stdin: {"name": ..., "steps": [...]}
    or the list of steps alone."""
    try:
        body = json.loads(sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{args.file} is not valid JSON: {exc}") from None
    if isinstance(body, dict) and set(body) <= {"name", "steps"}:
        name, steps = body.get("name", args.name), body.get("steps")
    else:
        name, steps = args.name, body
    if not isinstance(steps, list):
        raise ConfigError('the workflow must be {"name": ..., "steps": [...]} or a list of steps')
    with App() as app:
        workflow = app.enqueue_workflow_sync(steps, name=name)
    if args.json:
        print(json.dumps(workflow.to_dict(), indent=2))
    else:
        print(f"enqueued workflow {workflow.id} ({workflow.name}) with {len(workflow.steps)} steps")
    return 0
