"""Enrichment on the hand-made corpus (tests/fixtures): every record's expected actor, tool,
write/ClickOps and primary resource, and the links, shape conflicts and traps between records, as
tests/fixtures/README.md interprets them."""

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
        """source.ip is set for IPv4/IPv6 addresses, not for service names (source.domain)."""
        assert {"ip": "2001:db8::17"} == enrich({"sourceIPAddress": "2001:db8::17"}).ecs["source"]
        assert "source" not in enrich({"sourceIPAddress": "AWS Internal"}).ecs
        assert {"domain": "ec2.amazonaws.com"} == enrich(
            {"sourceIPAddress": "ec2.amazonaws.com"}
        ).ecs["source"]

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


def _path(record: Any, *steps: str | int) -> Any:
    for step in steps:
        record = record[step]
    return record


def _all(corpus: Path) -> dict[str, dict[str, Any]]:
    return {slug: _load(corpus, slug) for slug in EXPECTED}


# (issuer, user): the user's userIdentity.accessKeyId is the key the issuer's call returned
KEY_CHAINS = [
    ("chain-1-iamuser-assume-role", "chain-2-s3-put-object-data-event", "ASIABTSBB5P3NOFDED5K"),
    ("chain-1-iamuser-assume-role", "chain-3-role-chaining-assume-role-caller-copy", "ASIABTSBB5P3NOFDED5K"),
    ("chain-3-role-chaining-assume-role-caller-copy", "chain-4-ecs-update-service-target-account", "ASIAOI3ECEUIIDMS6FEA"),
    ("chain-3-role-chaining-assume-role-target-copy", "chain-4-ecs-update-service-target-account", "ASIAOI3ECEUIIDMS6FEA"),
    ("gha-assume-role-with-web-identity", "terraform-run-instances", "ASIAUG6LNA34UCDWQ7ZT"),
    ("aws-service-ec2-assume-instance-role", "boto3-athena-start-query-36kb-query-string", "ASIAE6A3ENCY77OC4YKX"),
]  # fmt: skip

# (record, JSON path, type there): the same path takes different types across records
CONFLICTS = [
    ("java-sdk-ce-get-cost-and-usage-filter-object", ("requestParameters", "filter"), dict),
    ("boto3-lambda-cognito-list-users-filter-string", ("requestParameters", "filter"), str),
    ("sso-console-modify-db-instance", ("responseElements", "endpoint"), dict),
    ("terraform-create-db-cluster-sso-cli", ("responseElements", "endpoint"), str),
    ("terraform-run-instances", ("requestParameters", "iamInstanceProfile"), dict),
    ("cfn-exec-role-create-launch-configuration", ("requestParameters", "iamInstanceProfile"), str),
    ("go-sdk-logs-start-query-epoch-starttime", ("requestParameters", "startTime"), int),
    ("go-sdk-v1-grafana-get-metric-data-iso-starttime", ("requestParameters", "startTime"), str),
    ("terraform-run-instances", ("requestParameters", "disableApiTermination"), bool),
    ("cli-iamuser-modify-instance-attribute", ("requestParameters", "disableApiTermination"), dict),
    ("sso-console-put-bucket-policy", ("requestParameters", "bucketPolicy", "Statement", 0, "Principal"), dict),
    ("sso-console-put-bucket-policy", ("requestParameters", "bucketPolicy", "Statement", 0, "Action"), list),
    ("sso-console-put-bucket-policy", ("requestParameters", "bucketPolicy", "Statement", 0, "Resource"), list),
    ("sso-console-put-bucket-policy", ("requestParameters", "bucketPolicy", "Statement", 1, "Principal"), str),
    ("sso-console-put-bucket-policy", ("requestParameters", "bucketPolicy", "Statement", 1, "Action"), str),
    ("sso-console-put-bucket-policy", ("requestParameters", "bucketPolicy", "Statement", 1, "Resource"), str),
    ("root-console-login-mfa", ("requestParameters",), type(None)),
    ("sso-console-list-buckets-ipv6", ("responseElements",), type(None)),
    ("kms-rotate-key-service-event-aws-internal", ("responseElements",), type(None)),
]  # fmt: skip

FAILED_CALLS = {
    "cli-iamuser-terminate-instances-client-unauthorized": "Client.UnauthorizedOperation",
    "sso-console-create-snapshot-unauthorized": "UnauthorizedOperation",
    "java-sdk-iam-put-role-policy-40kb-limit-exceeded": "LimitExceededException",
    "sts-assume-role-access-denied": "AccessDenied",
}


class TestCorpusLinks:
    @pytest.mark.parametrize(("issuer", "user", "key"), KEY_CHAINS)
    def test_access_key_chains(self, corpus: Path, issuer: str, user: str, key: str) -> None:
        """A later record uses the access key an earlier AssumeRole* returned."""
        first, then = _load(corpus, issuer), _load(corpus, user)
        assert key == first["responseElements"]["credentials"]["accessKeyId"]
        assert key == then["userIdentity"]["accessKeyId"]
        assert first["eventTime"] < then["eventTime"]

    def test_chain_4_is_two_hops_from_alice_in_another_account(self, corpus: Path) -> None:
        """chain-4's human is alice.ops: her key issued chain-3's, which chain-4 uses in
        444455556666; enrichment alone sees only the role session."""
        alice = enrich(_load(corpus, "chain-1-iamuser-assume-role")).ct["actor"]
        hop4 = _load(corpus, "chain-4-ecs-update-service-target-account")
        assert ("alice.ops", "iam-user", "111122223333") == (
            alice["name"],
            alice["type"],
            alice["account_id"],
        )
        assert "444455556666" == hop4["recipientAccountId"]
        assert "alice.ops" != enrich(hop4).ct["actor"]["name"]

    def test_one_call_logged_in_two_accounts(self, corpus: Path) -> None:
        """The chain-3 copies are one AssumeRole: same requestID and sharedEventID, different
        eventID, delivered to the caller's and the role owner's account."""
        caller = _load(corpus, "chain-3-role-chaining-assume-role-caller-copy")
        target = _load(corpus, "chain-3-role-chaining-assume-role-target-copy")
        assert caller["requestID"] == target["requestID"]
        assert "0438d706-66c4-4ca8-a482-20948303f3fb" == caller["sharedEventID"]
        assert caller["sharedEventID"] == target["sharedEventID"]
        assert caller["eventID"] != target["eventID"]
        assert ("AssumedRole", "AWSAccount") == (
            caller["userIdentity"]["type"],
            target["userIdentity"]["type"],
        )
        assert ("111122223333", "444455556666") == (
            caller["recipientAccountId"],
            target["recipientAccountId"],
        )

    def test_one_session_name_two_keys(self, corpus: Path) -> None:
        """jane.doe@example.com's session name comes with a console key (the ClickOps records)
        and a CLI key (terraform-create-db-cluster-sso-cli), which is not ClickOps."""
        console = [
            "sso-console-put-bucket-policy",
            "sso-console-modify-db-instance",
            "sso-console-authorize-sg-ingress",
            "sso-console-update-function-configuration",
            "sso-console-describe-instances-eu-west-1",
            "sso-console-list-buckets-ipv6",
        ]
        cli = _load(corpus, "terraform-create-db-cluster-sso-cli")
        keys = {_load(corpus, s)["userIdentity"]["accessKeyId"] for s in console}
        assert {"ASIACO5BFHRR6DGNU6MF"} == keys
        assert "ASIAJSRWJ7JBOL2ANWT3" == cli["userIdentity"]["accessKeyId"]
        assert {"true"} == {_load(corpus, s)["sessionCredentialFromConsole"] for s in console}
        assert "sessionCredentialFromConsole" not in cli
        out = enrich(cli).ct
        assert ("jane.doe@example.com", False) == (out["actor"]["name"], out["clickops"])

    def test_identity_center_sign_in_is_not_linked_by_name(self, corpus: Path) -> None:
        """The Identity Center sign-in (user jane.doe) precedes the console sign-in (session
        jane.doe@example.com); neither record maps one name to the other."""
        idc = _load(corpus, "idc-user-authentication-non-api")
        login = _load(corpus, "sso-console-login-no-username")
        assert idc["eventTime"] < login["eventTime"]
        names = (enrich(idc).ct["actor"]["name"], enrich(login).ct["actor"]["name"])
        assert ("jane.doe", "jane.doe@example.com") == names
        assert "jane.doe@example.com" not in json.dumps(idc)

    def test_bucket_policy_grant_then_cross_account_read(self, corpus: Path) -> None:
        """The ClickOps bucket policy lets 444455556666's partner role read acme-shared-exports;
        the cross-account GetObject is a later read of that bucket from 444455556666."""
        policy = _load(corpus, "sso-console-put-bucket-policy")
        read = _load(corpus, "cross-account-s3-get-object-awsaccount-vpce")
        grant = _path(policy, "requestParameters", "bucketPolicy", "Statement", 0)
        assert ["arn:aws:iam::444455556666:role/partner-analytics-reader"] == grant["Principal"][
            "AWS"
        ]
        assert "acme-shared-exports" == policy["requestParameters"]["bucketName"]
        assert "acme-shared-exports" == read["requestParameters"]["bucketName"]
        assert "444455556666" == read["userIdentity"]["accountId"]
        assert read["vpcEndpointAccountId"] != read["recipientAccountId"]
        assert policy["eventTime"] < read["eventTime"]

    def test_cdk_change_set_names_the_cloudformation_role(self, corpus: Path) -> None:
        """The CDK change set's roleARN is the role whose AWSCloudFormation session made the
        launch configuration."""
        cdk = _load(corpus, "cdk-create-change-set")
        cfn = _load(corpus, "cfn-exec-role-create-launch-configuration")
        issuer = cfn["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
        assert cdk["requestParameters"]["roleARN"] == issuer
        assert cdk["eventTime"] < cfn["eventTime"]
        assert "cloudformation.amazonaws.com" == cfn["userIdentity"]["invokedBy"]

    def test_saml_subject_and_source_identity(self, corpus: Path) -> None:
        """The SAML sign-in's human is the SAML subject, m.garcia@example.com, whose source
        identity is m.garcia, in 444455556666."""
        rec = _load(corpus, "saml-assume-role-with-saml")
        actor = enrich(rec).ct["actor"]
        assert ("m.garcia@example.com", "saml-user") == (actor["name"], actor["type"])
        assert "m.garcia" == rec["requestParameters"]["sourceIdentity"]
        assert "444455556666" == rec["recipientAccountId"]


class TestCorpusShapes:
    @pytest.mark.parametrize(("slug", "path", "kind"), CONFLICTS)
    def test_shape_conflicts(
        self, corpus: Path, slug: str, path: tuple[Any, ...], kind: type
    ) -> None:
        """Each side of a documented shape conflict has its type, and enriches without error."""
        rec = _load(corpus, slug)
        assert kind is type(_path(rec, *path))
        assert [] == enrich(rec).errors

    def test_user_identity_shapes(self, corpus: Path) -> None:
        """userIdentity is absent on the Insight record and has no type on the KMS service event."""
        assert "userIdentity" not in _load(corpus, "insight-api-call-rate-start")
        kms = _load(corpus, "kms-rotate-key-service-event-aws-internal")
        assert "type" not in kms["userIdentity"]

    def test_large_values(self, corpus: Path) -> None:
        """policyDocument is 42,342 bytes and queryString 36,154, beyond Lucene's term limit."""
        policy = _load(corpus, "java-sdk-iam-put-role-policy-40kb-limit-exceeded")
        query = _load(corpus, "boto3-athena-start-query-36kb-query-string")
        sizes = (
            len(policy["requestParameters"]["policyDocument"].encode()),
            len(query["requestParameters"]["queryString"].encode()),
        )
        assert (42_342, 36_154) == sizes
        assert sizes[1] > 32_766


class TestCorpusTraps:
    def test_outcome(self, corpus: Path) -> None:
        """errorCode is on the four failed API calls only; they and the failed ConsoleLogin
        (errorMessage, no errorCode) are failures, the rest (the Insight too, as Elastic's
        integration says) success."""
        records = _all(corpus)
        assert FAILED_CALLS == {s: r["errorCode"] for s, r in records.items() if "errorCode" in r}
        failed_login = records["console-login-failed-hidden-username"]
        assert ("Failure", True) == (
            failed_login["responseElements"]["ConsoleLogin"],
            "errorMessage" in failed_login,
        )
        outcomes = {s: enrich(r).ecs["event"]["outcome"] for s, r in records.items()}
        assert {*FAILED_CALLS, "console-login-failed-hidden-username"} == {
            s for s, o in outcomes.items() if o == "failure"
        }
        assert "success" == outcomes["insight-api-call-rate-start"]
        assert 35 == sum(o == "success" for o in outcomes.values())

    def test_assume_role_is_read_only_and_not_a_write(self, corpus: Path) -> None:
        """Every STS AssumeRole* record carries readOnly: true and is not counted as a write."""
        sts = [
            r for r in _all(corpus).values() if str(r.get("eventName", "")).startswith("AssumeRole")
        ]
        assert 7 == len(sts)
        assert {True} == {r["readOnly"] for r in sts}
        assert {False} == {enrich(r).ct["is_write"] for r in sts}

    def test_source_ip_values_that_are_not_addresses(self, corpus: Path) -> None:
        """AWS Internal and service names give no source.ip; IPv6 and private 10.x addresses do."""
        got = {
            s: (r.get("sourceIPAddress"), enrich(r).ecs.get("source", {}).get("ip"))
            for s, r in _all(corpus).items()
        }
        not_ip = {v for v, ip in got.values() if v is not None and ip is None}
        assert {"AWS Internal", "cloudformation.amazonaws.com", "ec2.amazonaws.com"} == not_ip
        assert "2001:db8:3c4d:15:9a1e:7f22:c0a8:1f40" == got["sso-console-list-buckets-ipv6"][1]
        assert {"10.80.14.25", "10.60.8.14"} == {
            ip for _, ip in got.values() if ip and ip.startswith("10.")
        }

    def test_s3_user_agents_are_bracketed(self, corpus: Path) -> None:
        """userAgent on s3.amazonaws.com records is wrapped in [...]; the S3 console's contains
        aws-sdk-java and is still the console."""
        s3 = [r for r in _all(corpus).values() if r.get("eventSource") == "s3.amazonaws.com"]
        assert 5 == len(s3)
        assert all(r["userAgent"].startswith("[") and r["userAgent"].endswith("]") for r in s3)
        policy = _load(corpus, "sso-console-put-bucket-policy")
        assert "aws-sdk-java" in policy["userAgent"]
        assert "console" == enrich(policy).ct["tool"]

    def test_event_versions_and_console_flag(self, corpus: Path) -> None:
        """eventVersion 1.08, 1.09 and 1.10 are mixed; sessionCredentialFromConsole is the string
        "true" where present, never a boolean."""
        records = _all(corpus).values()
        assert {"1.08", "1.09", "1.10"} == {r["eventVersion"] for r in records}
        assert {"true"} == {
            r["sessionCredentialFromConsole"]
            for r in records
            if "sessionCredentialFromConsole" in r
        }
