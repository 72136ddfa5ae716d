"""The index as people query it: enriched fields, CloudTracker's fields, a mapping that does not
grow, and backfill-mode settings that come back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from ingest.testing import synth

from .helpers import all_docs, backfill, cli, count, search

pytestmark = pytest.mark.integration


def _leaf_fields(mapping: dict[str, Any]) -> int:
    n = 0
    for spec in mapping.get("properties", {}).values():
        n += 1 + len(spec.get("fields", {}))
        n += _leaf_fields(spec)
    return n


def _field_count(url: str) -> dict[str, int]:
    client = OpenSearch(hosts=[url])
    try:
        got = client.indices.get_mapping(index="cloudtrail")
        return {name: _leaf_fields(body["mappings"]) for name, body in got.items()}
    finally:
        client.close()


def _term(field: str, value: Any) -> dict[str, Any]:
    return {"term": {field: value}}


class TestCorpusInTheIndex:
    @pytest.fixture
    def loaded(self, corpus: Path, opensearch_url: str, tmp_path: Path) -> str:
        run = backfill(str(corpus / "files"), opensearch_url, tmp_path, "--include-insight")
        assert (0, 27, 0) == (run.code, run.done["indexed"], run.done["deadlettered"]), run.stderr
        return opensearch_url

    def test_clickops_fields(self, loaded: str) -> None:
        """The four console writes in the corpus files are ClickOps (three by jane.doe, found by
        her SSO session's e-mail in user.email; raj.patel's failed)."""
        assert 4 == count(loaded, query=_term("ct.clickops", True))
        assert 3 == count(
            loaded,
            query={
                "bool": {
                    "filter": [
                        _term("ct.clickops", True),
                        _term("user.email", "jane.doe@example.com"),
                    ]
                }
            },
        )
        assert 1 == count(
            loaded,
            query={
                "bool": {"filter": [_term("ct.clickops", True), _term("event.outcome", "failure")]}
            },
        )

    def test_enriched_values_per_record(self, loaded: str) -> None:
        """Stored documents carry actor, tool and resource; payloads keep their original shape."""
        docs = {
            d["eventName"] + "/" + d["eventTime"]: d
            for d in all_docs(loaded).values()
            if "eventName" in d
        }
        policy = docs["PutBucketPolicy/2024-03-05T14:00:12Z"]
        assert ("jane.doe@example.com", "sso-user", "AdministratorAccess") == (
            policy["ct"]["actor"]["name"],
            policy["ct"]["actor"]["type"],
            policy["ct"]["actor"]["permission_set"],
        )
        assert ("console", "arn:aws:s3:::acme-shared-exports") == (
            policy["ct"]["tool"],
            policy["ct"]["resource"]["id"],
        )
        assert isinstance(
            policy["requestParameters"]["bucketPolicy"]["Statement"][0]["Principal"], dict
        )
        assert "flat" not in policy["ct"] or not policy["ct"]["flat"]  # kept out of _source

    def test_human_behind_the_role_chain(self, loaded: str) -> None:
        """alice.ops is the human behind chain-2, chain-3 and chain-4: her report follows the key
        her AssumeRole issued (DeployRole) and the key that role's AssumeRole issued, two hops
        deep into 444455556666 (the chain-3 copy logged there carries no key and adds nothing)."""
        run = cli(
            "report",
            "principal",
            "--opensearch",
            loaded,
            "--user",
            "alice.ops",
            "--since",
            "2024-03-05",
            "--until",
            "2024-03-06",  # the window ends before this day
            "--format",
            "json",
        )
        assert 0 == run.code, run.stderr
        got = json.loads(run.stdout)
        deploy = "arn:aws:iam::111122223333:role/DeployRole"
        target = "arn:aws:iam::444455556666:role/OrgDeployTarget"
        actions = {r["action"]: (r["calls"], r["via"]) for r in got["sections"]["Actions used"]}
        assert {
            "sts:AssumeRole": (2, f"direct, {deploy}"),  # chain-1, chain-3 (caller copy)
            "s3:PutObject": (1, deploy),  # chain-2
            "ecs:UpdateService": (1, target),  # chain-4
        } == actions
        assert [deploy, target] == got["summary"]["roles_assumed"]

    def test_cloudtracker_fields(self, loaded: str) -> None:
        """The fields CloudTracker queries answer bare, as .keyword and as .raw; errorCode is
        absent on success."""
        issuer = "userIdentity.sessionContext.sessionIssuer"
        for sfx in ("", ".keyword", ".raw"):
            assert 5 == count(
                loaded,
                query={
                    "bool": {
                        "filter": [
                            _term(f"eventName{sfx}", "AssumeRole"),
                            _term(f"eventSource{sfx}", "sts.amazonaws.com"),
                        ]
                    }
                },
            )
            assert 1 == count(
                loaded,
                query={
                    "bool": {
                        "filter": [
                            _term(f"eventName{sfx}", "AssumeRole"),
                            _term(
                                f"requestParameters.roleArn{sfx}",
                                "arn:aws:iam::111122223333:role/DeployRole",
                            ),
                        ]
                    }
                },
            )
            assert 1 == count(
                loaded,
                query=_term(f"userIdentity.arn{sfx}", "arn:aws:iam::111122223333:user/alice.ops"),
            )
            assert 2 == count(loaded, query=_term(f"userIdentity.userName{sfx}", "bob.dev"))
            assert 1 == count(
                loaded, query=_term(f"userIdentity.accessKeyId{sfx}", "ASIAOI3ECEUIIDMS6FEA")
            )
            assert 2 == count(loaded, query=_term(f"{issuer}.userName{sfx}", "DeployRole"))
            assert 1 == count(
                loaded,
                query=_term(f"{issuer}.arn{sfx}", "arn:aws:iam::444455556666:role/OrgDeployTarget"),
            )
            # both copies of the chain-3 AssumeRole issued the key chain-4 uses
            assert 2 == count(
                loaded,
                query=_term(
                    f"responseElements.credentials.accessKeyId{sfx}", "ASIAOI3ECEUIIDMS6FEA"
                ),
            )
        assert 4 == count(loaded, query={"exists": {"field": "errorCode"}})
        assert 23 == count(loaded, query={"bool": {"must_not": {"exists": {"field": "errorCode"}}}})

    def test_flat_payload_search_and_ip_field(self, loaded: str) -> None:
        """Variable payloads are searchable through ct.flat.*, whatever their shape in other
        records; source.ip takes CIDR queries."""
        assert 1 == count(loaded, query=_term("ct.flat.request.userPoolId", "us-east-1_Qw7Zt2LmN"))
        assert 1 == count(loaded, query=_term("ct.flat.request.filter", 'email ^= "ops."'))
        assert 1 == count(
            loaded, query=_term("ct.flat.request.filter.and.dimensions.key", "LINKED_ACCOUNT")
        )
        assert 1 == count(loaded, query=_term("source.ip", "2001:db8::/32"))
        assert 2 == count(loaded, query=_term("source.ip", "10.0.0.0/8"))


class TestMappingStability:
    def test_field_count_does_not_grow_with_random_shapes(
        self, corpus: Path, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """After the corpus, 2,000 records with random payload shapes change no mapping and are
        all indexed: zero rejections."""
        assert 0 == backfill(str(corpus / "files"), opensearch_url, tmp_path / "a").code
        before = _field_count(opensearch_url)
        from ingest.demo import upload

        files = list(
            synth.generate(
                2000,
                seed=11,
                accounts=("111122223333",),
                regions=("us-east-1",),
                days=1,
                start=synth.datetime(2024, 3, 5, tzinfo=synth.UTC),
                make_record=synth.chaotic_record,
            )
        )
        upload(s3_url, files, bucket="chaos")
        run = backfill("s3://chaos", opensearch_url, tmp_path / "b")
        assert (0, 2000, 0) == (run.code, run.done["indexed"], run.done["deadlettered"]), (
            run.stderr[-3000:]
        )
        assert before == _field_count(opensearch_url)
        coerced = count(opensearch_url, query={"exists": {"field": "ct.coerced"}})
        assert (
            coerced > 0
        )  # roleArn/bucketName/credentials of the wrong shape were coerced, not rejected


class TestBackfillMode:
    def test_settings_are_fast_during_the_run_and_restored_after_sigterm(
        self, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """While loading, refresh is off and replicas 0; SIGTERM stops the run (exit 3) and the
        template's values come back."""
        files = list(
            synth.generate(
                4000,
                days=1,
                accounts=("111122223333",),
                regions=("us-east-1",),
                start=synth.datetime(2024, 3, 5, tzinfo=synth.UTC),
            )
        )
        from ingest.demo import upload

        upload(s3_url, files, bucket="big")
        env = {**os.environ, "AWS_ENDPOINT_URL_S3": s3_url}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingest.cli",
                "backfill",
                "s3://big",
                "--opensearch",
                opensearch_url,
                "--state",
                str(tmp_path / "l.sqlite"),
                "--log-format",
                "json",
                "--workers",
                "1",
                "--max-in-flight",
                "1",
                "--bulk-mib",
                "0.2",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        client = OpenSearch(hosts=[opensearch_url])
        seen = None
        deadline = time.monotonic() + 60
        while seen is None and time.monotonic() < deadline and proc.poll() is None:
            if client.indices.exists(index="cloudtrail-2024.03"):
                seen = client.indices.get_settings(index="cloudtrail-2024.03")[
                    "cloudtrail-2024.03"
                ]["settings"]["index"]
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert seen is not None, "the index never appeared"
        assert ("-1", "0") == (seen["refresh_interval"], seen["number_of_replicas"])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert 3 == proc.returncode, err.decode()[-2000:]
        after = client.indices.get_settings(index="cloudtrail-2024.03")["cloudtrail-2024.03"][
            "settings"
        ]["index"]
        client.close()
        assert ("5s", "1") == (after["refresh_interval"], after["number_of_replicas"])
        assert b"same command again to resume" in err

    def test_mode_can_be_turned_off(self, s3_url: str, opensearch_url: str, tmp_path: Path) -> None:
        """With --no-backfill-mode the indices keep the template's settings from the start."""
        from ingest.demo import upload

        upload(
            s3_url,
            list(synth.generate(200, days=1, accounts=("111122223333",), regions=("us-east-1",))),
            bucket="small",
        )
        assert 0 == backfill("s3://small", opensearch_url, tmp_path, "--no-backfill-mode").code
        client = search(opensearch_url)
        got = client.indices.get_settings(index="cloudtrail-*")
        client.close()
        assert {("5s", "1")} == {
            (
                v["settings"]["index"]["refresh_interval"],
                v["settings"]["index"]["number_of_replicas"],
            )
            for v in got.values()
        }


class TestSetupOptions:
    def test_settings_options_and_missing_ism(self, opensearch_url: str) -> None:
        """setup's shard/replica/refresh/codec options shape new indices; without an ISM plugin it
        says so in one line and succeeds."""
        run = cli(
            "setup",
            "--opensearch",
            opensearch_url,
            "--shards",
            "2",
            "--replicas",
            "0",
            "--refresh-interval",
            "30s",
            "--codec",
            "best_compression",
            "--log-format",
            "json",
        )
        assert 0 == run.code, run.stderr
        assert "no ISM plugin" in run.stdout
        client = search(opensearch_url)
        client.indices.create(index="cloudtrail-2031.01")
        got = client.indices.get_settings(index="cloudtrail-2031.01")["cloudtrail-2031.01"][
            "settings"
        ]["index"]
        client.close()
        assert ("2", "0", "30s", "best_compression") == (
            got["number_of_shards"],
            got["number_of_replicas"],
            got["refresh_interval"],
            got["codec"],
        )

    def test_bad_setup_option_exits_2(self, opensearch_url: str) -> None:
        """An unknown codec is a configuration error."""
        assert 2 == cli("setup", "--opensearch", opensearch_url, "--codec", "zstd-max").code
