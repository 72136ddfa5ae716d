"""Test doubles and embedded servers, apart from the real stages (as httpx keeps its mock
transport apart from the real ones): importable by the tests, the demo and the benchmarks.

- :mod:`ingest.testing.memory`: in-memory :class:`~ingest.source.ObjectStore` and
  :class:`~ingest.sink.BulkClient` for unit tests of the layers above them;
- :mod:`ingest.testing.faultproxy`: an HTTP proxy that injects faults in front of a real server,
  and a null cluster that answers ``_bulk`` without indexing (benchmarks);
- :mod:`ingest.testing.alerting`: the Alerting 2.x and Notifications plugins, emulated for the
  fault proxy (``ALERTING_2X``);
- :mod:`ingest.testing.s3model`: an S3 endpoint over a local directory with S3's latency
  (benchmarks);
- :mod:`ingest.testing.synth`: realistic synthetic CloudTrail archives;
- :mod:`ingest.testing.servers`: moto's S3/SQS server and osmem-server on loopback.
"""

__all__: list[str] = []
