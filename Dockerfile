# The agentgym image (CLI, envs, retriever server; no torch). `docker compose --profile build build`.
FROM python:3.11-slim
WORKDIR /opt/agentgym
COPY pyproject.toml README.md LICENSE ./
COPY agentgym agentgym
COPY envs envs
COPY sandboxes sandboxes
COPY trainers trainers
RUN pip install --no-cache-dir . && useradd --create-home agentgym
USER agentgym
ENTRYPOINT []
CMD ["agentgym", "--help"]
