# One image for every service; SERVICE picks which one runs (intake, sla, assignment, reporting).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_COMPILE_BYTECODE=1
COPY requirements.lock ./
RUN pip install -q uv==0.13.9 && uv pip install --system -q -r requirements.lock
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
COPY pyproject.toml README.md ./
RUN uv pip install --system -q --no-deps ./shared .
ENV SERVICE=intake HTTP_HOST=0.0.0.0
# numeric, so Kubernetes can check runAsNonRoot
USER 65534:65534
CMD ["sh", "-c", "exec python -m \"$SERVICE\""]
