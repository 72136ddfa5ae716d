"""Enrichment on the hand-made corpus: every record's expected actor, tool, write/ClickOps and
primary resource, as the corpus README interprets them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.enrich import ENRICHERS, enrich
from ingest.enrich.actor import permission_set
from ingest.enrich.flat import MAX_STRING

N = None
# slug: (actor name, actor type, tool, tool language, is_write, clickops, resource id)
EXPECTED: dict[str, tuple[Any, ...]] = {
    "aws-service-ec2-assume-instance-role": ("ec2.amazonaws.com", "aws-service", "aws-service", N, False, False, "arn:aws:iam::111122223333:role/analytics-batch-ec2"),
    "boto3-athena-start-query-36kb-query-string": ("i-0f3a9c2b7d18e4a56", "assumed-role", "sdk", "python", True, False, "arn:aws:athena:us-east-1:111122223333:workgroup/batch-analytics"),
    "boto3-lambda-cognito-list-users-filter-string": ("user-sync", "assumed-role", "sdk", "python", False, False, "arn:aws:cognito-idp:us-east-1:111122223333:userpool/us-east-1_Qw7Zt2LmN"),
    "cdk-create-change-set": ("aws-cdk-jdoe", "assumed-role", "cdk", N, True, False, "arn:aws:cloudformation:us-east-1:111122223333:stack/LegacyWorkersStack/fefb223b-0b5d-460d-8707-841ca4b87816"),
    "cfn-exec-role-create-launch-configuration": ("AWSCloudFormation", "assumed-role", "cloudformation", N, True, False, "LegacyWorkersStack-WorkersLaunchConfig5A7D0C8E-QWZ4RT8YUP1N"),
    "cfn-invoked-with-iamuser-creds-create-role": ("carol.release", "iam-user", "cloudformation", N, True, False, "arn:aws:iam::111122223333:role/reporting-stack-ReportLambdaRole-Q7W8E9R0T1Y2"),
    "chain-1-iamuser-assume-role": ("alice.ops", "iam-user", "aws-cli", N, False, False, "arn:aws:iam::111122223333:role/DeployRole"),
    "chain-2-s3-put-object-data-event": ("release-2024-03-05", "assumed-role", "aws-cli", N, True, False, "arn:aws:s3:::acme-release-artifacts/payments-api/2024.03.05-1/payments-api.tar.gz"),
    "chain-3-role-chaining-assume-role-caller-copy": ("release-2024-03-05", "assumed-role", "aws-cli", N, False, False, "arn:aws:iam::444455556666:role/OrgDeployTarget"),
    "chain-3-role-chaining-assume-role-target-copy": ("release-2024-03-05", "aws-account", "aws-cli", N, False, False, "arn:aws:iam::444455556666:role/OrgDeployTarget"),
    "chain-4-ecs-update-service-target-account": ("release-2024-03-05-xacct", "assumed-role", "aws-cli", N, True, False, "arn:aws:ecs:eu-west-1:444455556666:service/payments/payments-api"),
    "cli-iamuser-describe-security-groups": ("alice.ops", "iam-user", "aws-cli", N, False, False, "sg-fa914df1fb79686bb"),
    "cli-iamuser-modify-instance-attribute": ("alice.ops", "iam-user", "aws-cli", N, True, False, "i-321e7a00d48dc5005"),
    "cli-iamuser-terminate-instances-client-unauthorized": ("bob.dev", "iam-user", "aws-cli", N, True, False, "i-d74c5da538fc6e560"),
    "console-login-failed-hidden-username": ("unknown", "iam-user", "console", N, False, False, N),
    "cross-account-s3-get-object-awsaccount-vpce": ("etl-nightly", "aws-account", "sdk", "python", False, False, "arn:aws:s3:::acme-shared-exports/exports/2024/03/05/orders-delta-0001.parquet"),
    "federated-user-get-caller-identity": ("m.rossi@example.com", "federated-user", "sdk", "python", False, False, N),
    "gha-assume-role-with-web-identity": ("repo:example-org/platform-infra:ref:refs/heads/main", "web-identity-user", "sdk", "javascript", False, False, "arn:aws:iam::111122223333:role/gha-terraform"),
    "go-sdk-logs-start-query-epoch-starttime": ("0914a71cf15cc194dce4a7901d7d458e", "assumed-role", "sdk", "go", False, False, "arn:aws:logs:us-east-1:111122223333:log-group:/ecs/payments-api"),
    "go-sdk-v1-grafana-get-metric-data-iso-starttime": ("grafana-reader", "iam-user", "sdk", "go", False, False, N),
    "idc-user-authentication-non-api": ("jane.doe", "identity-center-user", "console", N, False, False, N),
    "insight-api-call-rate-start": (N, N, N, N, False, False, N),
    "java-sdk-ce-get-cost-and-usage-filter-object": ("finops-reporter", "iam-user", "sdk", "java", False, False, N),
    "java-sdk-iam-put-role-policy-40kb-limit-exceeded": ("jenkins-build-4821", "assumed-role", "sdk", "java", True, False, "arn:aws:iam::111122223333:role/data-lake-reader"),
    "kms-rotate-key-service-event-aws-internal": ("kms.amazonaws.com", "aws-service", "aws-service", N, True, False, "arn:aws:kms:us-east-1:111122223333:key/faabfb3d-b39f-4c24-a399-92154d254332"),
    "pulumi-put-bucket-tagging-unicode": ("li.wei@example.com", "sso-user", "pulumi", N, True, False, "arn:aws:s3:::acme-customer-data-prod"),
    "root-console-login-mfa": ("root", "root", "console", N, False, False, N),
    "s3-outposts-put-object-edge-device": ("line3-gateway", "assumed-role", "sdk", "rust", True, False, "arn:aws:s3-outposts:us-east-1:111122223333:outpost/op-0e9d3c1b7a5f24680/bucket/factory-telemetry/object/line-3/2024/03/05/14/readings-000118.parquet"),
    "saml-assume-role-with-saml": ("m.garcia@example.com", "saml-user", "console", N, False, False, "arn:aws:iam::444455556666:role/SAML-PlatformEngineer"),
    "sso-console-authorize-sg-ingress": ("jane.doe@example.com", "sso-user", "console", N, True, True, "sg-1eebcaa4bab2c11f8"),
    "sso-console-create-snapshot-unauthorized": ("raj.patel@example.com", "sso-user", "console", N, True, True, "vol-baea12744ba31539f"),
    "sso-console-describe-instances-eu-west-1": ("jane.doe@example.com", "sso-user", "console", N, False, False, N),
    "sso-console-list-buckets-ipv6": ("jane.doe@example.com", "sso-user", "console", N, False, False, N),
    "sso-console-login-no-username": ("jane.doe@example.com", "sso-user", "console", N, False, False, N),
    "sso-console-modify-db-instance": ("jane.doe@example.com", "sso-user", "console", N, True, True, "arn:aws:rds:us-east-1:111122223333:db:orders-prod-db"),
    "sso-console-put-bucket-policy": ("jane.doe@example.com", "sso-user", "console", N, True, True, "arn:aws:s3:::acme-shared-exports"),
    "sso-console-update-function-configuration": ("jane.doe@example.com", "sso-user", "console", N, True, True, "arn:aws:lambda:us-east-1:111122223333:function:nightly-report"),
    "sts-assume-role-access-denied": ("bob.dev", "iam-user", "aws-cli", N, False, False, "arn:aws:iam::111122223333:role/BreakGlassAdmin"),
    "terraform-create-db-cluster-sso-cli": ("jane.doe@example.com", "sso-user", "terraform", N, True, False, "arn:aws:rds:us-east-1:111122223333:cluster:orders-aurora"),
    "terraform-run-instances": ("GitHubActions", "assumed-role", "terraform", N, True, False, "i-461ecdecd8aa30d09"),
}  # fmt: skip


def _load(corpus: Path, slug: str) -> dict[str, Any]:
    return json.loads((corpus / "events" / f"{slug}.json").read_text(encoding="utf-8"))


class TestCorpusEnrichment:
    def test_every_corpus_record_is_covered(self, corpus: Path) -> None:
        """The expectation table names every record of the corpus."""
        assert sorted(p.stem for p in (corpus / "events").glob("*.json")) == sorted(EXPECTED)

    @pytest.mark.parametrize("slug", sorted(EXPECTED))
    def test_expected_fields(self, corpus: Path, slug: str) -> None:
        """Actor, tool, write, ClickOps and primary resource match the corpus README."""
        out = enrich(_load(corpus, slug))
        ct = out.ct
        got = (
            ct.get("actor", {}).get("name"),
            ct.get("actor", {}).get("type"),
            ct.get("tool"),
            ct.get("tool_language"),
            ct["is_write"],
            ct["clickops"],
            ct.get("resource", {}).get("id"),
        )
        assert [] == out.errors
        assert EXPECTED[slug] == got

    def test_console_writes_are_exactly_the_clickops_records(self, corpus: Path) -> None:
        """The five console writes of the README, and nothing else, are ClickOps."""
        clickops = {s for s in EXPECTED if enrich(_load(corpus, s)).ct["clickops"]}
        assert {
            "sso-console-put-bucket-policy",
            "sso-console-modify-db-instance",
            "sso-console-authorize-sg-ingress",
            "sso-console-update-function-configuration",
            "sso-console-create-snapshot-unauthorized",
        } == clickops


class TestActor:
    def test_permission_set_name(self) -> None:
        """The SSO role name gives the permission set without prefix and suffix."""
        assert "AdministratorAccess" == permission_set(
            "AWSReservedSSO_AdministratorAccess_7c1e2f9a4b3d5e60"
        )
        assert "Odd_Name" == permission_set("AWSReservedSSO_Odd_Name")

    def test_missing_or_empty_identity(self) -> None:
        """Without userIdentity there is no actor, and nothing fails."""
        for record in ({"eventName": "X"}, {"userIdentity": None}, {"userIdentity": {}}):
            out = enrich(record)
            assert ([], None) == (out.errors, out.ct.get("actor"))


class TestEcsAndFlat:
    def test_source_ip_only_for_addresses(self) -> None:
        """source.ip is set for IPv4/IPv6 addresses, not for service names."""
        assert {"ip": "2001:db8::17"} == enrich({"sourceIPAddress": "2001:db8::17"}).ecs["source"]
        assert "source" not in enrich({"sourceIPAddress": "AWS Internal"}).ecs
        assert "source" not in enrich({"sourceIPAddress": "ec2.amazonaws.com"}).ecs

    def test_flat_copies_are_bounded(self, corpus: Path) -> None:
        """The 36 KB queryString is cut below Lucene's term limit in the flat copy."""
        rec = _load(corpus, "boto3-athena-start-query-36kb-query-string")
        flat = enrich(rec).ct["flat"]["request"]
        assert len(rec["requestParameters"]["queryString"]) > 32_766
        assert MAX_STRING == len(flat["queryString"])

    def test_failing_enricher_keeps_the_rest(self) -> None:
        """One enricher raising costs only its own fields; the failure is reported."""

        def broken(record: Any, ct: Any) -> Any:
            raise KeyError("boom")

        out = enrich({"userIdentity": {"type": "Root"}}, (*ENRICHERS[:1], ("broken", broken)))
        assert "root" == out.ct["actor"]["name"]
        assert ["broken: KeyError: 'boom'"] == out.errors


class TestSignIns:
    def test_mfa_used_on_console_sign_ins(self, corpus: Path) -> None:
        """ct.mfa_used says whether a console sign-in used MFA, and is absent elsewhere."""
        got = {
            slug: enrich(_load(corpus, slug)).ct.get("mfa_used")
            for slug in (
                "root-console-login-mfa",
                "sso-console-login-no-username",
                "cli-iamuser-modify-instance-attribute",
            )
        }
        assert {
            "root-console-login-mfa": True,
            "sso-console-login-no-username": False,
            "cli-iamuser-modify-instance-attribute": None,
        } == got
