# pgq with its example app, for docker compose. Real deployments install pgq into
# their own image next to their tasks.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pgq ./pgq
COPY api ./api
COPY migrations ./migrations
RUN pip install --no-cache-dir .
USER nobody
CMD ["pgq", "--help"]
