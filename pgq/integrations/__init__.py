"""Enqueue inside another library's transaction, and run pgq inside a framework.

- ``pgq.integrations.sqlalchemy``: a SQLAlchemy ``Session`` / ``AsyncSession`` (or a Core
  ``Connection`` / ``AsyncConnection``), committed or rolled back with it.
- ``pgq.integrations.django``: enqueue on Django's own connection in ``transaction.atomic()``,
  ``manage.py pgq_worker`` / ``pgq_migrate`` with the project's settings.

Every integration writes the job on the caller's own connection, so the job commits with
the caller's data and wakes workers at that commit; a rollback leaves nothing. The SQL
function ``pgq.enqueue()`` (migration 0013) serves any driver pgq does not speak itself.
Each imports its framework lazily.
"""
