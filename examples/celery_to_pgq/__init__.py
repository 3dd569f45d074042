"""One Celery task module (celery_tasks.py, for reading) moved to pgq (pgq_tasks.py, runnable)."""
