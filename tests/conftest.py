"""Fixtures for every test: real servers on loopback (moto's S3 server, osmem-server), never
mocks, and the project's hand-made CloudTrail corpus (``tests/fixtures``).

Select the OpenSearch backend with ``--opensearch-backend=testcontainers`` or
``CT_INGEST_TEST_OPENSEARCH=testcontainers`` (needs Docker); the default is osmem-server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.testing.servers import MotoServer

from .fixtures.build import EVENTS, build

# A test never skips silently. A skip (pytest.skip in a test or fixture, a skipif mark,
# importorskip) is reported as a failure unless the test declares the skip legitimate with
# @pytest.mark.may_skip("what the machine may lack, e.g. Docker"); a module that skips at
# import is a collection error. So a missing fixture or file fails the run, for `python -m
# pytest` as typed from README.md and in .ci/run alike. Today no test is marked may_skip.
_UNDECLARED_SKIP = "skipped without @pytest.mark.may_skip (a missing fixture or file?): {}"


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and not item.get_closest_marker("may_skip")
    ):
        report.outcome = "failed"
        report.longrepr = _UNDECLARED_SKIP.format(_skip_reason(report))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = _UNDECLARED_SKIP.format(_skip_reason(report))
    return report


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--opensearch-backend",
        default=os.environ.get("CT_INGEST_TEST_OPENSEARCH", "osmem"),
        choices=("osmem", "testcontainers"),
        help="OpenSearch for integration tests: osmem-server (default) or a testcontainer.",
    )


class _Backend:
    """One OpenSearch for the session; ``fresh()`` hands each test an empty cluster URL."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._clones: list[Any] = []
        if kind == "osmem":
            from osmem_server import OsmemServer

            self._server: Any = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
            self.url = self._server.url
        else:
            from testcontainers.opensearch import OpenSearchContainer

            self._server = OpenSearchContainer().start()
            cfg = self._server.get_config()
            self.url = f"http://{cfg['host']}:{cfg['port']}"

    def fresh(self) -> str:
        if self.kind == "osmem":
            clone = self._server.clone()
            self._clones.append(clone)
            return str(clone.url)
        from opensearchpy import OpenSearch

        client = OpenSearch(hosts=[self.url])
        client.indices.delete(index="*", params={"expand_wildcards": "all"}, ignore=[404])
        client.indices.delete_index_template(name="*", ignore=[404])
        client.close()
        return self.url

    def release(self) -> None:
        while self._clones:
            self._clones.pop().close()

    def stop(self) -> None:
        self.release()
        if self.kind == "osmem":
            self._server.close()
        else:
            self._server.stop()


@pytest.fixture(autouse=True)
def _private_homes(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the user's own state or configuration: the default ledger,
    dead-letter and config file live in a fresh directory for each test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("CT_INGEST_CONFIG", raising=False)


@pytest.fixture(scope="session")
def opensearch_backend(request: pytest.FixtureRequest) -> Iterator[_Backend]:
    backend = _Backend(request.config.getoption("--opensearch-backend"))
    yield backend
    backend.stop()


@pytest.fixture
def opensearch_url(opensearch_backend: _Backend) -> Iterator[str]:
    """An empty OpenSearch for this test."""
    yield opensearch_backend.fresh()
    opensearch_backend.release()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer.start()
    yield server
    server.stop()


@pytest.fixture
def s3_url(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty S3 (moto reset), with fake credentials and the endpoint override in the env."""
    moto_server.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server.url)
    return moto_server.url


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-made corpus, built once per session: ``events/`` (one record a file) and
    ``files/`` (the records in CloudTrail's S3 layout, made from ``events/`` by
    ``tests/fixtures/build.py``). A missing record is an error, never a skip."""
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(EVENTS, root / "events")
    build(root / "files")
    return root
