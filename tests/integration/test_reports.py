"""Reports, monitors and dashboards against a dataset whose answers the test knows."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from opensearchpy import OpenSearch

from ingest.ops.alerts import monitor_query, render_monitors
from ingest.ops.dashboards import saved_objects

from .helpers import backfill, cli

pytestmark = pytest.mark.integration

A, B, C = "111122223333", "444455556666", "777788889999"
NOW = datetime.now(UTC).replace(microsecond=0)
RECENT = NOW - timedelta(hours=2)
OLD = NOW - timedelta(days=40)
_n = [0]


def _rec(
    when: datetime,
    account: str,
    identity: dict[str, Any],
    source: str,
    name: str,
    *,
    console: bool = False,
    ua: str = "aws-cli/2.15.0 Python/3.11.8",
    read_only: bool = False,
    req: dict[str, Any] | None = None,
    resp: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    _n[0] += 1
    rec = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": ua,
        "requestParameters": req,
        "responseElements": resp,
        "eventID": f"ev-{_n[0]:04d}",
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
        **extra,
    }
    if console:
        rec["sessionCredentialFromConsole"] = "true"
    return rec


def _sso(person: str, account: str) -> dict[str, Any]:
    role = "AWSReservedSSO_AdministratorAccess_7c1e2f9a4b3d5e60"
    return {
        "type": "AssumedRole",
        "principalId": f"AROAX:{person}",
        "accountId": account,
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{person}",
        "accessKeyId": "ASIACONSOLE0000001",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "userName": role,
                "arn": f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}",
            }
        },
    }


def _role_session(role: str, account: str, key: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAY:alice-{role}",
        "accountId": account,
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/alice-{role}",
        "accessKeyId": key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "userName": role,
                "arn": f"arn:aws:iam::{account}:role/{role}",
            }
        },
    }


ALICE = {
    "type": "IAMUser",
    "principalId": "AIDAALICE",
    "arn": f"arn:aws:iam::{A}:user/alice",
    "accountId": A,
    "accessKeyId": "AKIAALICE000000001",
    "userName": "alice",
}
ROOT = {"type": "Root", "principalId": A, "arn": f"arn:aws:iam::{A}:root", "accountId": A}
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/122.0"
DB = f"arn:aws:rds:us-east-1:{A}:db:orders-prod"


def dataset() -> list[dict[str, Any]]:
    jane, raj = _sso("jane@example.com", A), _sso("raj@example.com", A)
    recs = []
    recs += [
        _rec(
            RECENT,
            A,
            jane,
            "s3.amazonaws.com",
            "PutBucketPolicy",
            console=True,
            ua=BROWSER,
            req={"bucketName": "acme-a"},
        )
        for _ in range(4)
    ]
    recs += [
        _rec(
            RECENT,
            A,
            raj,
            "rds.amazonaws.com",
            "ModifyDBInstance",
            console=True,
            ua=BROWSER,
            req={"dBInstanceIdentifier": "orders-prod"},
        )
        for _ in range(2)
    ]
    recs += [
        _rec(
            RECENT,
            B,
            _sso("raj@example.com", B),
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            console=True,
            ua=BROWSER,
            req={"groupId": "sg-1"},
        )
    ]
    recs += [
        _rec(
            RECENT,
            A,
            jane,
            "ec2.amazonaws.com",
            "DescribeInstances",
            console=True,
            ua=BROWSER,
            read_only=True,
        )
        for _ in range(3)
    ]
    gha = _role_session("gha-terraform", C, "ASIATERRAFORM00001")
    recs += [
        _rec(
            RECENT,
            C,
            gha,
            "ec2.amazonaws.com",
            "RunInstances",
            ua="Terraform/1.7.4 aws-sdk-go-v2/1.25",
        )
        for _ in range(5)
    ]
    recs += [
        _rec(
            OLD,
            A,
            jane,
            "s3.amazonaws.com",
            "PutBucketPolicy",
            console=True,
            ua=BROWSER,
            req={"bucketName": "acme-a"},
        )
        for _ in range(2)
    ]
    login = {"eventType": "AwsConsoleSignIn"}
    recs += [
        _rec(
            RECENT,
            A,
            ROOT,
            "signin.amazonaws.com",
            "ConsoleLogin",
            ua=BROWSER,
            resp={"ConsoleLogin": "Success"},
            additionalEventData={"MFAUsed": "Yes"},
            **login,
        )
    ]
    recs += [
        _rec(
            RECENT,
            A,
            jane,
            "signin.amazonaws.com",
            "ConsoleLogin",
            ua=BROWSER,
            resp={"ConsoleLogin": "Success"},
            additionalEventData={"MFAUsed": "No"},
            **login,
        )
        for _ in range(2)
    ]
    recs += [
        _rec(
            RECENT,
            A,
            ROOT,
            "iam.amazonaws.com",
            "CreateAccessKey",
            ua=BROWSER,
            req={"userName": "root"},
        )
    ]
    # alice: direct calls, then AssumeRole chains into two roles (the second in account B)
    recs += [
        _rec(RECENT, A, ALICE, "ec2.amazonaws.com", "DescribeInstances", read_only=True)
        for _ in range(2)
    ]
    recs += [
        _rec(
            RECENT,
            A,
            ALICE,
            "sts.amazonaws.com",
            "AssumeRole",
            read_only=True,
            req={"roleArn": f"arn:aws:iam::{A}:role/DeployRole"},
            resp={"credentials": {"accessKeyId": "ASIAKEYONE00000001"}},
        )
    ]
    deploy = _role_session("DeployRole", A, "ASIAKEYONE00000001")
    recs += [
        _rec(RECENT, A, deploy, "s3.amazonaws.com", "PutObject", req={"bucketName": "rel"})
        for _ in range(3)
    ]
    recs += [
        _rec(
            RECENT,
            A,
            deploy,
            "sts.amazonaws.com",
            "AssumeRole",
            read_only=True,
            req={"roleArn": f"arn:aws:iam::{B}:role/OrgDeployTarget"},
            resp={"credentials": {"accessKeyId": "ASIAKEYTWO00000002"}},
        )
    ]
    target = _role_session("OrgDeployTarget", B, "ASIAKEYTWO00000002")
    recs += [
        _rec(
            RECENT,
            B,
            target,
            "ecs.amazonaws.com",
            "UpdateService",
            resp={"service": {"serviceArn": f"arn:aws:ecs:us-east-1:{B}:service/p/api"}},
        )
        for _ in range(2)
    ]
    return recs


IAM_DETAILS = {
    "UserDetailList": [
        {
            "UserName": "alice",
            "GroupList": ["ops"],
            "UserPolicyList": [
                {
                    "PolicyName": "inline",
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["ec2:Describe*", "sts:AssumeRole"],
                                "Resource": "*",
                            }
                        ]
                    },
                }
            ],
            "AttachedManagedPolicies": [],
        }
    ],
    "GroupDetailList": [
        {
            "GroupName": "ops",
            "GroupPolicyList": [],
            "AttachedManagedPolicies": [{"PolicyArn": "arn:aws:iam::aws:policy/Extra"}],
        }
    ],
    "RoleDetailList": [],
    "Policies": [
        {
            "Arn": "arn:aws:iam::aws:policy/Extra",
            "PolicyVersionList": [
                {
                    "IsDefaultVersion": True,
                    "Document": {
                        "Statement": {"Effect": "Allow", "Action": ["iam:*", "s3:GetObject"]}
                    },
                }
            ],
        }
    ],
}


@pytest.fixture(scope="module")
def loaded(opensearch_backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("reports")
    recs = dataset()
    by_day: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_day.setdefault(f"{r['recipientAccountId']}/{r['eventTime'][:10]}", []).append(r)
    for i, (slot, day_recs) in enumerate(sorted(by_day.items())):
        account, day = slot.split("/")
        d = datetime.fromisoformat(day)
        path = (
            root / f"AWSLogs/{account}/CloudTrail/us-east-1/{d:%Y/%m/%d}/"
            f"{account}_CloudTrail_us-east-1_{d:%Y%m%d}T1200Z_R{i}.json.gz"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(orjson.dumps({"Records": day_recs})))
    url = opensearch_backend.fresh()
    run = backfill(str(root), url, root / "state")
    assert (0, len(recs)) == (run.code, run.done["indexed"]), run.stderr[-2000:]
    client = OpenSearch(hosts=[url])
    client.indices.refresh(index="cloudtrail")
    client.close()
    yield url
    opensearch_backend.release()


class TestClickOpsReport:
    def test_numbers(self, loaded: str, tmp_path: Path) -> None:
        """Totals, trend against the previous 30 days, top users/resources/services/accounts and
        the account without console writes, exactly."""
        run = cli(
            "report", "clickops", "--opensearch", loaded, "--since", "30d", "--format", "json"
        )
        assert 0 == run.code, run.stderr
        got = json.loads(run.stdout)
        summary, s = got["summary"], got["sections"]
        assert (8, 2, "+300%") == (
            summary["clickops_events"],
            summary["previous_period"],
            summary["change"],
        )
        assert [("jane@example.com", 4), ("raj@example.com", 3), ("root", 1)] == [
            (r["user"], r["console writes"]) for r in s["Who changes things by hand"]
        ]
        resources = {
            r["resource"]: r["console writes"]
            for r in s["Resources changed from the console (candidates for IaC)"]
        }
        assert {
            "arn:aws:s3:::acme-a": 4,
            DB: 2,
            "sg-1": 1,
            f"arn:aws:iam::{A}:user/root": 1,
        } == resources
        assert [(A, 7), (B, 1)] == [(r["account"], r["console writes"]) for r in s["Accounts"]]
        assert [{"account": C}] == s[
            "Accounts with no console writes (candidates for removing console access)"
        ]

    def test_markdown_and_csv(self, loaded: str, tmp_path: Path) -> None:
        """The same report renders as a Markdown document and as CSV rows."""
        md = cli(
            "report",
            "clickops",
            "--opensearch",
            loaded,
            "--since",
            "30d",
            "-o",
            str(tmp_path / "r.md"),
        )
        assert 0 == md.code
        text = (tmp_path / "r.md").read_text()
        assert text.startswith("# ClickOps report")
        assert "| jane@example.com | 4 |" in text
        csv_run = cli(
            "report", "clickops", "--opensearch", loaded, "--since", "30d", "--format", "csv"
        )
        assert "Who changes things by hand,raj@example.com,3" in csv_run.stdout


class TestPrincipalReport:
    def test_follows_assume_role_chains_across_accounts(self, loaded: str, tmp_path: Path) -> None:
        """alice's actions include those made with the keys her AssumeRole calls issued, two hops
        deep into another account; with IAM details, the grants she never used are listed."""
        details = tmp_path / "iam.json"
        details.write_text(json.dumps(IAM_DETAILS))
        run = cli(
            "report",
            "principal",
            "--opensearch",
            loaded,
            "--user",
            "alice",
            "--format",
            "json",
            "--iam-authorization-details",
            str(details),
        )
        assert 0 == run.code, run.stderr
        got = json.loads(run.stdout)
        actions = {r["action"]: (r["calls"], r["via"]) for r in got["sections"]["Actions used"]}
        assert {
            "ec2:DescribeInstances": (2, "direct"),
            "sts:AssumeRole": (2, f"direct, arn:aws:iam::{A}:role/DeployRole"),
            "s3:PutObject": (3, f"arn:aws:iam::{A}:role/DeployRole"),
            "ecs:UpdateService": (2, f"arn:aws:iam::{B}:role/OrgDeployTarget"),
        } == actions
        assert [
            f"arn:aws:iam::{A}:role/DeployRole",
            f"arn:aws:iam::{B}:role/OrgDeployTarget",
        ] == got["summary"]["roles_assumed"]
        granted = {r["granted"]: r["used as"] for r in got["sections"]["Granted actions"]}
        assert {
            "ec2:Describe*": "ec2:DescribeInstances",
            "sts:AssumeRole": "sts:AssumeRole",
            "iam:*": "NEVER USED",
            "s3:GetObject": "NEVER USED",
        } == granted

    def test_role_report(self, loaded: str) -> None:
        """--role reports the role's own calls and what its sessions' keys did next."""
        run = cli(
            "report",
            "principal",
            "--opensearch",
            loaded,
            "--role",
            "DeployRole",
            "--format",
            "json",
        )
        actions = {
            r["action"]: r["calls"] for r in json.loads(run.stdout)["sections"]["Actions used"]
        }
        assert {"s3:PutObject": 3, "sts:AssumeRole": 1, "ecs:UpdateService": 2} == actions


class TestCloudTrackerQueries:
    def test_cloudtracker_style_query_on_raw_fields(self, loaded: str) -> None:
        """CloudTracker's own query shape on OpenSearch (match on .raw fields, no errorCode,
        terms on eventName.raw / eventSource.raw) lists alice's direct calls."""
        client = OpenSearch(hosts=[loaded])
        res = client.search(
            index="cloudtrail",
            body={
                "size": 0,
                "query": {
                    "bool": {
                        "must": [
                            {"match": {"userIdentity.arn.raw": f"arn:aws:iam::{A}:user/alice"}}
                        ],
                        "must_not": [{"exists": {"field": "errorCode.raw"}}],
                        "filter": [
                            {"range": {"eventTime": {"gte": (NOW - timedelta(days=1)).isoformat()}}}
                        ],
                    }
                },
                "aggs": {
                    "event_names": {
                        "terms": {"field": "eventName.raw", "size": 5000},
                        "aggs": {
                            "service_names": {"terms": {"field": "eventSource.raw", "size": 5000}}
                        },
                    }
                },
            },
        )
        client.close()
        got = {
            (b["key"], b["service_names"]["buckets"][0]["key"])
            for b in res["aggregations"]["event_names"]["buckets"]
        }
        assert {
            ("DescribeInstances", "ec2.amazonaws.com"),
            ("AssumeRole", "sts.amazonaws.com"),
        } == got


class TestMonitorsAndDashboards:
    def test_monitor_queries_hit_what_they_should(self, loaded: str) -> None:
        """Each monitor's query, run as is, finds exactly the events it is about."""
        client = OpenSearch(hosts=[loaded])
        monitors = render_monitors(
            alias="cloudtrail", threshold=20, resource_pattern="*:db:*prod*", lookback="24h"
        )
        hits = [
            client.search(index="cloudtrail", body={**monitor_query(m), "track_total_hits": True})[
                "hits"
            ]["total"]["value"]
            for m in monitors
        ]
        client.close()
        # ClickOps in 24 h; console writes to prod RDS; root calls; sign-ins without MFA
        assert [8, 2, 2, 2] == hits

    def test_dashboard_aggregations_answer(self, loaded: str) -> None:
        """The ClickOps-by-user and changes-by-tool visualizations, run as searches, give the
        dataset's numbers."""
        objects = {o["id"]: o for o in saved_objects()}
        client = OpenSearch(hosts=[loaded])

        def buckets(vid: str, query: dict[str, Any]) -> dict[str, int]:
            field = next(
                a["params"]["field"]
                for a in json.loads(objects[vid]["attributes"]["visState"])["aggs"]
                if a["type"] == "terms"
            )
            res = client.search(
                index="cloudtrail",
                body={"size": 0, "query": query, "aggs": {"t": {"terms": {"field": field}}}},
            )
            return {str(b["key"]): b["doc_count"] for b in res["aggregations"]["t"]["buckets"]}

        assert {"jane@example.com": 6, "raj@example.com": 3, "root": 1} == buckets(
            "ct-clickops-by-user", {"term": {"ct.clickops": True}}
        )
        tools = buckets("ct-changes-by-tool", {"term": {"ct.is_write": True}})
        assert {"console": 10, "iac": 5, "cli-sdk": 5} == tools
        client.close()

    def test_setup_imports_dashboards_and_reports_missing_alerting(self, loaded: str) -> None:
        """setup --dashboards posts the saved objects with overwrite and the XSRF header; on a
        cluster without Alerting (_cat/plugins lists none), --alerts says so in one line and
        setup succeeds."""
        seen: dict[str, Any] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen.update(path=self.path, xsrf=self.headers.get("osd-xsrf"), body=body)
                out = json.dumps(
                    {
                        "success": True,
                        "successCount": sum(line.startswith(b"{") for line in body.split(b"\n")),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                return None

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            run = cli(
                "setup",
                "--opensearch",
                loaded,
                "--dashboards",
                f"http://127.0.0.1:{server.server_port}",
                "--alerts",
                "--webhook",
                "http://127.0.0.1:9/hook",
                "--log-format",
                "json",
            )
        finally:
            server.shutdown()
        assert 0 == run.code, run.stderr
        assert "/api/saved_objects/_import?overwrite=true" == seen["path"]
        assert "true" == seen["xsrf"]
        assert b'"id": "ct-clickops"' in seen["body"]
        assert (
            "alerts: not installed: OpenSearch 3.8.0 runs no opensearch-alerting or " in run.stdout
        )
        assert "16 saved objects imported" in run.stdout
