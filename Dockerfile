# mvna-ocs: one image for `ocs serve` (and the other `ocs` commands). Non-root, no compiler.
#   docker build -t mvna-ocs .
#   docker run --rm -p 3868:3868 -p 8080:8080 mvna-ocs serve --redis-url redis://HOST:6379/0 ...
# The image runs against an external Redis (compose.yaml brings one up); the embedded
# redis-server of `make run` is not in the image.
FROM python:3.11-slim AS build
WORKDIR /src
# The whole tree (less .dockerignore): every package pyproject.toml lists is built into the wheel.
COPY . .
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m pip wheel --no-cache-dir --wheel-dir /wheels /wheels/mvna_ocs-*.whl

FROM python:3.11-slim
RUN groupadd --system --gid 10001 ocs \
    && useradd --system --uid 10001 --gid ocs --home-dir /var/lib/ocs --create-home ocs
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY examples/catalog /etc/ocs/catalog
COPY deploy/docker/config.toml /etc/ocs/config.toml
USER ocs
WORKDIR /var/lib/ocs
ENV PYTHONUNBUFFERED=1
# Diameter (TCP), SIP (UDP and TCP), HTTP (/healthz, /metrics, call API).
EXPOSE 3868/tcp 5060/udp 5060/tcp 8080/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["ocs"]
CMD ["serve", "--config", "/etc/ocs/config.toml"]
