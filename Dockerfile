# The agentgym image (CLI, envs, retriever server; no torch). `docker compose --profile build build`.
FROM python:3.11-slim
WORKDIR /opt/agentgym
COPY pyproject.toml README.md LICENSE ./
COPY agentgym agentgym
COPY envs envs
COPY sandboxes sandboxes
COPY trainers trainers
# /cache: compose mounts the retriever's index cache there; a new named volume takes this owner.
RUN pip install --no-cache-dir . && useradd --create-home agentgym && mkdir /cache && chown agentgym /cache
USER agentgym
ENTRYPOINT []
CMD ["agentgym", "--help"]
