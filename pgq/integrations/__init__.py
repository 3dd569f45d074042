"""Enqueue inside another library's transaction.

- ``pgq.integrations.sqlalchemy``: a SQLAlchemy ``Session`` / ``AsyncSession`` (or a Core
  ``Connection`` / ``AsyncConnection``), committed or rolled back with it.

Every integration writes the job on the caller's own connection, so the job commits with
the caller's data and wakes workers at that commit; a rollback leaves nothing. The SQL
function ``pgq.enqueue()`` (migration 0013) serves any driver pgq does not speak itself.
"""
