# ct-ingest: CloudTrail -> OpenSearch. Runtime dependencies only, non-root, entrypoint ct-ingest.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingest ./ingest
COPY mappings ./mappings
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 ctingest
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER ctingest
ENV XDG_STATE_HOME=/home/ctingest/state PYTHONUNBUFFERED=1
VOLUME ["/home/ctingest/state"]
EXPOSE 9108
ENTRYPOINT ["ct-ingest"]
CMD ["--help"]
