"""Runnable examples: a FastAPI service (fastapi_app.py) and a Celery task module moved to pgq (celery_to_pgq/)."""
