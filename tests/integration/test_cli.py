"""The command line's contract: exit codes, setup, the corpus, and the demo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.testing.servers import free_port

from .helpers import all_docs, backfill, cli, count, search

pytestmark = pytest.mark.integration


class TestExitCodes:
    def test_usage_and_configuration_errors_exit_2(self, tmp_path: Path) -> None:
        """A missing option, a bad source, a bad date or URL is a one-line error and exit 2."""
        cases = [
            ("backfill", str(tmp_path)),  # no --opensearch
            ("backfill", str(tmp_path / "missing"), "--opensearch", "http://127.0.0.1:9"),
            ("backfill", "ftp://x/y", "--opensearch", "http://127.0.0.1:9"),
            (
                "backfill",
                str(tmp_path),
                "--opensearch",
                "http://127.0.0.1:9",
                "--since",
                "last week",
            ),
            ("backfill", str(tmp_path), "--opensearch", "not a url"),
            (
                "backfill",
                str(tmp_path),
                "--opensearch",
                "http://127.0.0.1:9",
                "--since",
                "2024-03-05",
                "--until",
                "2024-03-01",
            ),
            ("backfill", str(tmp_path), "--opensearch", "http://127.0.0.1:9", "--bulk-mib", "20"),
        ]
        for args in cases:
            run = cli(*args)
            assert run.code == 2, (args, run.stdout, run.stderr)

    def test_unreachable_opensearch_aborts_with_3(self, tmp_path: Path) -> None:
        """When OpenSearch cannot be reached within the retry deadline the run aborts with 3."""
        (tmp_path / "AWSLogs").mkdir()
        run = backfill(
            str(tmp_path), f"http://127.0.0.1:{free_port()}", tmp_path, "--retry-deadline", "1"
        )
        assert run.code == 3
        assert "aborted" in run.stderr
        assert "run the same command again to resume" in run.stderr


class TestSetup:
    def test_setup_installs_the_template_with_the_alias(self, opensearch_url: str) -> None:
        """setup installs the template; a new index matching it gets the alias and mapping."""
        run = cli("setup", "--opensearch", opensearch_url, "--log-format", "json")
        assert run.code == 0, run.stderr
        client = search(opensearch_url)
        try:
            body = client.indices.get_index_template(name="ct-ingest-cloudtrail")
            tpl = body["index_templates"][0]["index_template"]
            assert tpl["index_patterns"] == ["cloudtrail-*"]
            client.indices.create(index="cloudtrail-2030.01")
            assert (
                "cloudtrail"
                in client.indices.get_alias(index="cloudtrail-2030.01")["cloudtrail-2030.01"][
                    "aliases"
                ]
            )
            mapping = client.indices.get_mapping(index="cloudtrail-2030.01")["cloudtrail-2030.01"][
                "mappings"
            ]
            assert mapping["properties"]["eventTime"]["type"] == "date"
        finally:
            client.close()


class TestCorpus:
    def test_corpus_from_a_local_directory(
        self, corpus: Path, opensearch_url: str, tmp_path: Path
    ) -> None:
        """The hand-made corpus: 26 records in log files, the digest and check file skipped, an
        empty file fine; with --include-insight the Insight record too."""
        run = backfill(str(corpus / "files"), opensearch_url, tmp_path)
        assert run.code == 0, run.stderr[-3000:]
        assert (
            run.done["records_seen"],
            run.done["indexed"],
            run.done["deadlettered"],
        ) == (26, 26, 0)
        # skipped: the check file (a key), CloudTrail-Digest/ and CloudTrail-Insight/ (prefixes)
        assert (run.done["keys_skipped"], run.done["prefixes_skipped"]) == (1, 2)
        assert count(opensearch_url) == 26
        again = backfill(
            str(corpus / "files"), opensearch_url, tmp_path / "insight", "--include-insight"
        )
        assert again.code == 0
        assert count(opensearch_url) == 27
        docs = all_docs(opensearch_url)
        assert any(d.get("eventType") == "AwsCloudTrailInsight" for d in docs.values())


class TestDemo:
    def test_demo_runs_end_to_end(self) -> None:
        """`ct-ingest demo` starts its servers, backfills, answers its three questions and stops,
        with moto's keys passed to the library, never put into the environment."""
        environ = dict(os.environ)
        run = cli("demo", "--events", "1500", "--log-format", "json")
        assert run.code == 0, run.stderr[-3000:]
        assert environ == dict(os.environ)
        assert "records seen 1,500 = indexed 1,500 + dead-lettered 0 + skipped 0" in run.stdout
        for title in ("ClickOps by user", "writes by tool", "Events per service", "Failed calls"):
            assert title in run.stdout
        assert "@example.com" in run.stdout  # SSO users are the ClickOps actors
