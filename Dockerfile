# One image for every service; SERVICE picks which one runs (intake, sla, assignment, reporting, notify).
# Production only: the runtime lock, not requirements.lock, so no test or dev tool is installed
# (tests/unit/test_image.py checks what the services import against it).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_COMPILE_BYTECODE=1
COPY requirements-runtime.lock ./
RUN pip install -q uv==0.13.9 && uv pip install --system -q -r requirements-runtime.lock
COPY shared ./shared
COPY services ./services
# Of deploy/, what the image runs: the topic creator (`python -m deploy.kafka.launcher create-topics`, the compose
# file's and Kubernetes' topics job), reporting's ClickHouse migrations, read from /app/deploy/clickhouse, and the
# compose file's local mailbox (`python -m deploy.mail_sink`).
COPY deploy/__init__.py deploy/mail_sink.py ./deploy/
COPY deploy/kafka ./deploy/kafka
COPY deploy/clickhouse ./deploy/clickhouse
COPY pyproject.toml README.md ./
RUN uv pip install --system -q --no-deps ./shared .
# Mount points the image's user owns, so that the compose file's named volumes, created from them, are writable by
# it: notify's sealing key and the privacy master key (written by the notify-key and privacy-key jobs), the mail
# sink's messages and intake's local store. Kubernetes mounts the keys read-only from Secrets instead.
RUN mkdir -p /run/ticketstream-notify /run/ticketstream-privacy /data/mail /var/lib/ticketstream/state \
    && chown 65534:65534 /run/ticketstream-notify /run/ticketstream-privacy /data/mail /var/lib/ticketstream/state
ENV SERVICE=intake HTTP_HOST=0.0.0.0
# numeric, so Kubernetes can check runAsNonRoot
USER 65534:65534
CMD ["sh", "-c", "exec python -m \"$SERVICE\""]
