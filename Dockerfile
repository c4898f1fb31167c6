# The runtime image: `nebula serve` (REST + GraphQL API on :8080) under gunicorn.
# Built by `docker-compose build`; see README.md "Run the runtime".
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nebula_compile ./nebula_compile
COPY policies ./policies
COPY runtime ./runtime
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NEBULA_ARTIFACTS=/data/artifacts
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/*.whl)[runtime]" \
    && rm -rf /wheels \
    && useradd --uid 10001 --user-group --home-dir /app --create-home nebula \
    && mkdir -p /data/artifacts && chown -R nebula:nebula /data
USER 10001:10001
WORKDIR /app
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
CMD ["nebula", "serve", "/app/nebula.yaml", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
