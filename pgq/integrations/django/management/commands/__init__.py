"""manage.py pgq_worker and pgq_migrate."""
