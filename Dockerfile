# One image for every service; SERVICE picks which one runs (intake, sla, assignment, reporting).
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
# file's and Kubernetes' topics job) and reporting's ClickHouse migrations, read from /app/deploy/clickhouse.
COPY deploy/__init__.py ./deploy/
COPY deploy/kafka ./deploy/kafka
COPY deploy/clickhouse ./deploy/clickhouse
COPY pyproject.toml README.md ./
RUN uv pip install --system -q --no-deps ./shared .
ENV SERVICE=intake HTTP_HOST=0.0.0.0
# numeric, so Kubernetes can check runAsNonRoot
USER 65534:65534
CMD ["sh", "-c", "exec python -m \"$SERVICE\""]
