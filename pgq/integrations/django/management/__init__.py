"""Django management commands of pgq: pgq_worker, pgq_migrate."""
