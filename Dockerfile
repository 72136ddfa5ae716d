# ct-ingest: CloudTrail -> OpenSearch. Runtime dependencies only, non-root, entrypoint ct-ingest.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY ingest ./ingest
COPY mappings ./mappings
# Wheels of ct-ingest and its runtime dependencies at the versions in requirements.lock (used as
# constraints: it pins the dev tools too, but only what ct-ingest needs is built).
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint requirements.lock .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 ctingest
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER ctingest
ENV XDG_STATE_HOME=/home/ctingest/state PYTHONUNBUFFERED=1
VOLUME ["/home/ctingest/state"]
EXPOSE 9108
ENTRYPOINT ["ct-ingest"]
CMD ["--help"]
