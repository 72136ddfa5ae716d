"""ECS fields with the semantics of Elastic's AWS CloudTrail integration, on the hand-made corpus
(tests/fixtures): every identity type, sign-ins with and without MFA, errors and the Insight
record, read through the template's field aliases as a query would; and GeoIP/ASN from a
MaxMind database the test writes itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.decode import decode_object, shape_record
from ingest.enrich import enrich, geo
from ingest.enrich.ecs import categorize, user_agent

from ..fixtures.geoip import LONDON, write_databases

TEMPLATE = Path(__file__).parents[2] / "mappings" / "index-template.json"


def _load(corpus: Path, slug: str) -> dict[str, Any]:
    return json.loads((corpus / "events" / f"{slug}.json").read_text(encoding="utf-8"))


def _aliases() -> dict[str, str]:
    """ECS field → the CloudTrail field it is an alias of, from the index template."""
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            if spec.get("type") == "alias":
                out[prefix + name] = spec["path"]
            walk(spec.get("properties", {}), f"{prefix}{name}.")

    walk(json.loads(TEMPLATE.read_text())["template"]["mappings"]["properties"], "")
    return out


def _get(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def ecs(record: dict[str, Any]) -> dict[str, Any]:
    """A field getter over the enriched document that resolves the template's aliases."""
    _, doc, failed = shape_record({"eventTime": "2024-03-05T14:00:00Z", **record}, "cloudtrail-")
    assert not failed, doc["ct"].get("enrich_errors")
    aliases = _aliases()
    for field in aliases:  # a document must never carry a value at an alias's path
        assert _get(doc, field) is None, field
    return {"doc": doc, "get": lambda path: _get(doc, aliases.get(path, path))}


def call(source: str, name: str, identity: dict[str, Any], **rest: Any) -> dict[str, Any]:
    """A record of ``name`` on ``source`` by ``identity``, with ``rest`` (written here)."""
    return {"eventSource": source, "eventName": name, "userIdentity": identity, **rest}


def view(record: dict[str, Any], *fields: str) -> tuple[Any, ...]:
    get = ecs(record)["get"]
    return tuple(get(f) for f in fields)


USER = ("user.id", "user.name", "user.email", "cloud.account.id", "service.name")
# slug: (user.id, user.name, user.email, cloud.account.id, service.name)
IDENTITIES: dict[str, tuple[Any, ...]] = {
    # IAMUser: the user's own name
    "chain-1-iamuser-assume-role": ("AIDA3QJBMWF2X3CBDYNQM", "alice.ops", None, "111122223333", None),
    # AssumedRole through IAM Identity Center: the role in user.name, the e-mail session in user.email
    "sso-console-put-bucket-policy": ("AROAKC74NFETSIQZBZJRE:jane.doe@example.com", "AWSReservedSSO_AdministratorAccess_7c1e2f9a4b3d5e60", "jane.doe@example.com", "111122223333", None),
    "pulumi-put-bucket-tagging-unicode": ("AROASXFL6YQJDZII5B2FQ:li.wei@example.com", "AWSReservedSSO_PowerUserAccess_e41a9c07b2d63f58", "li.wei@example.com", "111122223333", None),
    # AssumedRole: instance role (the session is the instance id), Lambda role, chained role
    "boto3-athena-start-query-36kb-query-string": ("AROAOGUFSKFCZKTOJJZ7U:i-0f3a9c2b7d18e4a56", "analytics-batch-ec2", None, "111122223333", None),
    "boto3-lambda-cognito-list-users-filter-string": ("AROABASPCZHD3LFOQ4FRO:user-sync", "user-sync-fn-role", None, "111122223333", None),
    "chain-4-ecs-update-service-target-account": ("AROAO2K45PZW2SIUBH5AE:release-2024-03-05-xacct", "OrgDeployTarget", None, "444455556666", None),
    # AssumedRole of CloudFormation's service session
    "cfn-exec-role-create-launch-configuration": ("AROAUFGARERE3QLTPJPDB:AWSCloudFormation", "cdk-hnb659fds-cfn-exec-role-111122223333-us-east-1", None, "111122223333", None),
    # Root: the account id is the principal; no user name (as the reference)
    "root-console-login-mfa": ("111122223333", None, None, "111122223333", None),
    # AWSService: no principal, the service in service.name
    "aws-service-ec2-assume-instance-role": (None, None, None, "111122223333", "ec2.amazonaws.com"),
    # AWSAccount: the caller's principal as seen by the other account
    "cross-account-s3-get-object-awsaccount-vpce": ("AROANI5NNKNTO3AG77OM6:etl-nightly", None, None, "111122223333", None),
    "chain-3-role-chaining-assume-role-target-copy": ("AROAD6TVPBK2IHVAO4HPM:release-2024-03-05", None, None, "444455556666", None),
    # FederatedUser: the session issuer (the IAM user that federated) is user.name
    "federated-user-get-caller-identity": ("111122223333:m.rossi@example.com", "federation-broker", None, "111122223333", None),
    "saml-assume-role-with-saml": ("fR998rkeKhgA4iW4aLd6+RSqhZg=:m.garcia@example.com", "m.garcia@example.com", "m.garcia@example.com", "444455556666", None),
    "gha-assume-role-with-web-identity": ("arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:repo:example-org/platform-infra:ref:refs/heads/main", "repo:example-org/platform-infra:ref:refs/heads/main", None, "111122223333", None),
    # Identity Center sign-in (userIdentity type Unknown): the user name
    "idc-user-authentication-non-api": ("111122223333", "jane.doe", None, "111122223333", None),
    # a failed sign-in: CloudTrail hides the name, and says so
    "console-login-failed-hidden-username": (None, "HIDDEN_DUE_TO_SECURITY_REASONS", None, "111122223333", None),
    # no userIdentity type (KMS service event): only the account
    "kms-rotate-key-service-event-aws-internal": (None, None, None, "111122223333", None),
}  # fmt: skip

EVENTS = (
    "event.kind",
    "event.category",
    "event.type",
    "event.outcome",
    "event.action",
    "event.provider",
)
# slug: (kind, category, type, outcome, action, provider)
CATEGORIZED: dict[str, tuple[Any, ...]] = {
    "root-console-login-mfa": ("event", ["authentication"], ["info"], "success", "ConsoleLogin", "signin.amazonaws.com"),
    "sso-console-login-no-username": ("event", ["authentication"], ["info"], "success", "ConsoleLogin", "signin.amazonaws.com"),
    "console-login-failed-hidden-username": ("event", ["authentication"], ["info"], "failure", "ConsoleLogin", "signin.amazonaws.com"),
    "idc-user-authentication-non-api": ("event", ["authentication"], ["info"], "success", "UserAuthentication", "signin.amazonaws.com"),
    "sts-assume-role-access-denied": ("event", ["authentication"], ["info"], "failure", "AssumeRole", "sts.amazonaws.com"),
    "saml-assume-role-with-saml": ("event", ["authentication"], ["info"], "success", "AssumeRoleWithSAML", "sts.amazonaws.com"),
    "cfn-invoked-with-iamuser-creds-create-role": ("event", ["iam"], ["admin", "creation"], "success", "CreateRole", "iam.amazonaws.com"),
    "java-sdk-iam-put-role-policy-40kb-limit-exceeded": ("event", ["iam"], ["admin", "change"], "failure", "PutRolePolicy", "iam.amazonaws.com"),
    "cli-iamuser-terminate-instances-client-unauthorized": ("event", ["host"], ["deletion"], "failure", "TerminateInstances", "ec2.amazonaws.com"),
    "sso-console-create-snapshot-unauthorized": ("event", ["host"], ["creation"], "failure", "CreateSnapshot", "ec2.amazonaws.com"),
    "sso-console-authorize-sg-ingress": ("event", ["network", "configuration"], ["change"], "success", "AuthorizeSecurityGroupIngress", "ec2.amazonaws.com"),
    "sso-console-put-bucket-policy": ("event", ["file"], ["change"], "success", "PutBucketPolicy", "s3.amazonaws.com"),
    "sso-console-list-buckets-ipv6": ("event", ["file"], ["info"], "success", "ListBuckets", "s3.amazonaws.com"),
    "terraform-create-db-cluster-sso-cli": ("event", ["database"], ["creation"], "success", "CreateDBCluster", "rds.amazonaws.com"),
    "go-sdk-logs-start-query-epoch-starttime": ("event", ["api"], ["start"], "success", "StartQuery", "logs.amazonaws.com"),
    # an Insight: no call, no error: success (as the reference), generic category
    "insight-api-call-rate-start": ("event", ["api"], ["info"], "success", None, None),
}  # fmt: skip


class TestIdentities:
    @pytest.mark.parametrize("slug", sorted(IDENTITIES))
    def test_user_and_account(self, corpus: Path, slug: str) -> None:
        """user.id, user.name, user.email, cloud.account.id and service.name per identity type."""
        assert IDENTITIES[slug] == view(_load(corpus, slug), *USER)

    def test_account_falls_back_to_the_identity(self, corpus: Path) -> None:
        """Without recipientAccountId, cloud.account.id is userIdentity.accountId."""
        record = _load(corpus, "sso-console-login-no-username")
        del record["recipientAccountId"]
        assert ("111122223333", "aws") == view(record, "cloud.account.id", "cloud.provider")

    def test_email_only_for_email_sessions(self, corpus: Path) -> None:
        """user.email comes from an e-mail role session name or user name (as the reference),
        and is absent otherwise."""
        emails = {s: view(_load(corpus, s), "user.email")[0] for s in sorted(IDENTITIES)}
        assert {
            "sso-console-put-bucket-policy": "jane.doe@example.com",
            "pulumi-put-bucket-tagging-unicode": "li.wei@example.com",
            "saml-assume-role-with-saml": "m.garcia@example.com",
        } == {s: e for s, e in emails.items() if e}

    def test_identity_center_user_is_named_by_its_sign_in(self) -> None:
        """An IdentityCenterUser names nobody: user.name (and user.email) are the UserName it
        signed in with, which is also a related user."""
        record = call(
            "signin.amazonaws.com",
            "UserAuthentication",
            {"type": "IdentityCenterUser", "accountId": "111122223333"},
            additionalEventData={"UserName": "kim.lee@example.com", "CredentialType": "PASSWORD"},
        )
        assert ("kim.lee@example.com", "kim.lee@example.com", ["kim.lee@example.com"]) == view(
            record, "user.name", "user.email", "related.user"
        )
        record["additionalEventData"]["UserName"] = "kim.lee"
        assert ("kim.lee", None) == view(record, "user.name", "user.email")

    def test_iam_user_named_by_email(self) -> None:
        """An IAM user whose name is an e-mail address has it as user.email too; the user's
        name is a related entity whatever it looks like."""
        ui = {"type": "IAMUser", "principalId": "AIDA9", "userName": "ops@example.com"}
        record = {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "DescribeVpcs",
            "userIdentity": ui,
        }
        email, entities = view(record, "user.email", "related.entity")
        assert "ops@example.com" == email
        assert "ops@example.com" in entities
        ui["userName"] = "ops"
        assert (None, True) == (
            view(record, "user.email")[0],
            "ops" in view(record, "related.entity")[0],
        )

    def test_iam_user_operations(self) -> None:
        """IAM user and group operations name their target user, new name and group."""
        record = {
            "eventSource": "iam.amazonaws.com",
            "eventName": "UpdateUser",
            "userIdentity": {"type": "IAMUser", "userName": "admin", "principalId": "AIDA1"},
            "requestParameters": {"userName": "bob.dev", "newUserName": "robert.dev"},
        }
        assert (
            ["iam"],
            ["user", "change"],
            "bob.dev",
            "robert.dev",
            ["admin", "AIDA1", "bob.dev", "robert.dev"],
        ) == view(
            record,
            "event.category",
            "event.type",
            "user.target.name",
            "user.changes.name",
            "related.user",
        )
        created = {
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateGroup",
            "requestParameters": {"groupName": "auditors"},
            "responseElements": {"group": {"groupName": "auditors", "groupId": "AGPA1"}},
        }
        assert (["group", "creation"], "auditors", "AGPA1") == view(
            created, "event.type", "group.name", "group.id"
        )


class TestEvents:
    @pytest.mark.parametrize("slug", sorted(CATEGORIZED))
    def test_categorization(self, corpus: Path, slug: str) -> None:
        """event.kind/category/type/outcome/action/provider of sign-ins, errors and Insights."""
        assert CATEGORIZED[slug] == view(_load(corpus, slug), *EVENTS)

    def test_every_record_has_kind_category_and_type(self, corpus: Path) -> None:
        """No corpus record is left without event.kind, event.category and event.type."""
        missing = [
            p.stem
            for p in sorted((corpus / "events").glob("*.json"))
            if None in view(_load(corpus, p.stem), "event.kind", "event.category", "event.type")
        ]
        assert [] == missing

    def test_mfa_shows_on_sign_ins(self, corpus: Path) -> None:
        """A sign-in with MFA and one without are told apart (ct.mfa_used), both authentication
        info events (ConsoleLogin is info in the reference, not start)."""
        with_mfa = _load(corpus, "root-console-login-mfa")
        without = _load(corpus, "sso-console-login-no-username")
        got = [view(r, "ct.mfa_used", "event.type", "event.outcome") for r in (with_mfa, without)]
        assert [(True, ["info"], "success"), (False, ["info"], "success")] == got

    def test_session_manager_sessions(self) -> None:
        """An SSM StartSession is a session start; the rest of SSM stays configuration."""
        assert (("session",), ("start",)) == categorize("ssm.amazonaws.com", "StartSession")
        assert (("configuration",), ("info",)) == categorize("ssm.amazonaws.com", "GetParameter")

    def test_categories_are_data(self) -> None:
        """The table decides: an unknown service gets the default, prefixes give the type."""
        assert (("api",), ("deletion",)) == categorize("example.amazonaws.com", "DeleteWidget")
        assert (("api",), ("info",)) == categorize("example.amazonaws.com", "Frobnicate")


class TestSourceAndRelated:
    def test_source_address_ip_and_domain(self, corpus: Path) -> None:
        """source.address as written; source.ip only for an IP, source.domain for a host name."""
        fields = ("source.address", "source.ip", "source.domain", "related.ip")
        got = {
            slug: view(_load(corpus, slug), *fields)
            for slug in (
                "sso-console-list-buckets-ipv6",
                "aws-service-ec2-assume-instance-role",
                "kms-rotate-key-service-event-aws-internal",
            )
        }
        ipv6 = "2001:db8:3c4d:15:9a1e:7f22:c0a8:1f40"
        assert {
            "sso-console-list-buckets-ipv6": (ipv6, ipv6, None, [ipv6]),
            "aws-service-ec2-assume-instance-role": ("ec2.amazonaws.com", None, "ec2.amazonaws.com", None),
            "kms-rotate-key-service-event-aws-internal": ("AWS Internal", None, None, None),
        } == got  # fmt: skip

    def test_related_of_an_sso_session(self, corpus: Path) -> None:
        """related.user and related.entity name the session, the role, the key and the ARNs."""
        record = _load(corpus, "sso-console-put-bucket-policy")
        users, entities = view(record, "related.user", "related.entity")
        role = "AWSReservedSSO_AdministratorAccess_7c1e2f9a4b3d5e60"
        assert {"jane.doe@example.com", "jane.doe", role} <= set(users)
        ui = record["userIdentity"]
        assert {
            "jane.doe@example.com",
            role,
            ui["arn"],
            ui["accessKeyId"],
            ui["sessionContext"]["sessionIssuer"]["arn"],
        } <= set(entities)
        assert "111122223333" not in entities  # the account is no entity of the caller's

    def test_a_session_name_is_an_entity_only_as_an_email(self, corpus: Path) -> None:
        """An instance id as the session name is a related user but not a related entity
        (the reference's semantics); the role is both."""
        record = _load(corpus, "boto3-athena-start-query-36kb-query-string")
        users, entities = view(record, "related.user", "related.entity")
        session = "i-0f3a9c2b7d18e4a56"
        assert {session, f"AROAOGUFSKFCZKTOJJZ7U:{session}", "analytics-batch-ec2"} <= set(users)
        assert session not in entities
        assert "analytics-batch-ec2" in entities

    def test_related_entity_has_the_target_role(self, corpus: Path) -> None:
        """AssumeRole's requested role ARN is a related entity."""
        _, entities = view(
            _load(corpus, "chain-1-iamuser-assume-role"), "related.user", "related.entity"
        )
        assert "arn:aws:iam::111122223333:role/DeployRole" in entities

    def test_related_entity_has_the_assumed_session(self) -> None:
        """AssumeRole's session name and the assumed role user's ARN are related entities."""
        session_arn = "arn:aws:sts::111122223333:assumed-role/build-role/i-0abc"
        record = call(
            "sts.amazonaws.com",
            "AssumeRole",
            {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
            requestParameters={
                "roleArn": "arn:aws:iam::111122223333:role/build-role",
                "roleSessionName": "i-0abc",
            },
            responseElements={
                "assumedRoleUser": {"arn": session_arn, "assumedRoleId": "AROA1:i-0abc"}
            },
        )
        assert {"arn:aws:iam::111122223333:role/build-role", "i-0abc", session_arn} == set(
            view(record, "related.entity")[0]
        )

    def test_related_entity_has_the_bucket(self) -> None:
        """An S3 call's bucket is a related entity by name, next to its resources' ARNs."""
        record = call(
            "s3.amazonaws.com",
            "GetBucketAcl",
            {"type": "IAMUser", "principalId": "AIDA7", "userName": "ci"},
            requestParameters={"bucketName": "logs-archive-01", "acl": ""},
            resources=[{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::logs-archive-01"}],
        )
        entities = set(view(record, "related.entity")[0])
        assert {"logs-archive-01", "arn:aws:s3:::logs-archive-01"} <= entities

    def test_related_entity_has_the_service_resources(self) -> None:
        """The [ecs.related_entity] table: an EC2 call's groups, rules and instances (down
        nested item lists), each once and only strings; a call's own target (StartSession's
        instance); a service the table does not name adds nothing of its payload."""
        who = {"type": "IAMUser", "principalId": "AIDA9", "userName": "ops", "accessKeyId": "AKIA9"}
        rule = {"groupId": "sg-0aa1", "securityGroupRuleId": "sgr-0bb2", "isEgress": False}
        authorized = call(
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            who,
            requestParameters={"groupId": "sg-0aa1", "ipPermissions": {"items": []}},
            responseElements={"securityGroupRuleSet": {"items": [rule, {"groupId": 7}]}},
        )
        run = call(
            "ec2.amazonaws.com",
            "RunInstances",
            who,
            responseElements={
                "instancesSet": {
                    "items": [
                        {
                            "instanceId": "i-0cc3",
                            "imageId": "ami-0dd4",
                            "networkInterfaceSet": {
                                "items": [{"networkInterfaceId": "eni-0ee5", "vpcId": "vpc-0ff6"}]
                            },
                        },
                        "not an item",
                    ]
                }
            },
        )
        session = call(
            "ssm.amazonaws.com", "StartSession", who, requestParameters={"target": "i-0ab7"}
        )
        other = call(
            "ssm.amazonaws.com", "GetParameter", who, requestParameters={"target": "i-0ab7"}
        )
        unknown = call(
            "example.amazonaws.com", "Frob", who, requestParameters={"groupId": "sg-0aa1"}
        )
        assert [
            ["ops", "AKIA9", "sg-0aa1", "sgr-0bb2"],
            ["ops", "AKIA9", "i-0cc3", "ami-0dd4", "eni-0ee5", "vpc-0ff6"],
            ["ops", "AKIA9", "i-0ab7"],
            ["ops", "AKIA9"],
            ["ops", "AKIA9"],
        ] == [view(r, "related.entity")[0] for r in (authorized, run, session, other, unknown)]

    def test_related_entity_lists_of_strings(self) -> None:
        """A path that ends at a list of strings adds each (BatchGetSecretValue's secrets)."""
        record = call(
            "secretsmanager.amazonaws.com",
            "BatchGetSecretValue",
            {"type": "IAMUser", "principalId": "AIDA9", "userName": "ops"},
            requestParameters={"secretIdList": ["db/main", "db/main", "", 3, "api/key"]},
        )
        assert ["ops", "db/main", "api/key"] == view(record, "related.entity")[0]

    def test_cloud_service(self, corpus: Path) -> None:
        """cloud.service.name is the event source's service; cloud.region the record's region."""
        got = view(
            _load(corpus, "sso-console-describe-instances-eu-west-1"),
            "cloud.service.name",
            "cloud.region",
            "cloud.provider",
        )
        assert ("ec2", "eu-west-1", "aws") == got


class TestTlsAndUserAgent:
    def test_tls_on_every_record_with_tls_details(self, corpus: Path) -> None:
        """Every record with tlsDetails has tls.version/version_protocol/cipher/server_name."""
        for path in sorted((corpus / "events").glob("*.json")):
            record = _load(corpus, path.stem)
            tls = record.get("tlsDetails")
            got = view(
                record,
                "tls.version",
                "tls.version_protocol",
                "tls.cipher",
                "tls.client.server_name",
            )
            if tls:
                want = (
                    tls["tlsVersion"].removeprefix("TLSv"),
                    "tls",
                    tls["cipherSuite"],
                    tls.get("clientProvidedHostHeader"),
                )
                assert want == got, path.stem
            else:
                assert (None, None, None, None) == got, path.stem

    def test_user_agents_parsed(self, corpus: Path) -> None:
        """The CLI, SDKs and browsers are named with their versions and operating systems."""
        fields = (
            "user_agent.original",
            "user_agent.name",
            "user_agent.version",
            "user_agent.os.name",
        )
        cli = _load(corpus, "chain-1-iamuser-assume-role")
        assert (cli["userAgent"], "aws-cli", "2.13.25", None) == view(cli, *fields)
        boto = view(_load(corpus, "boto3-athena-start-query-36kb-query-string"), *fields)
        assert ("Boto3", "1.34.54", "Linux") == boto[1:]
        browser = view(_load(corpus, "sso-console-login-no-username"), *fields)
        assert ("Chrome", "Mac OS X") == (browser[1], browser[3])

    def test_reference_agent(self) -> None:
        """The reference's own example: aws-cli 1.16.248 on Linux 4.9.184, a Spider device."""
        got = user_agent(
            "aws-cli/1.16.248 Python/3.4.7 Linux/4.9.184-0.1.ac.235.83.329.metal1.x86_64 botocore/1.12.239"
        )
        assert {"name": "aws-cli", "version": "1.16.248", "os": {"name": "Linux", "version": "4.9.184", "full": "Linux 4.9.184"}, "device": {"name": "Spider"}} == got  # fmt: skip

    def test_four_part_versions_are_whole(self) -> None:
        """A browser's four-part version is kept whole (Chrome 140.0.0.0, as the reference)."""
        got = user_agent(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"
        )
        assert ("Chrome", "140.0.0.0", "10.15.7") == (
            got["name"],
            got["version"],
            got["os"]["version"],
        )

    def test_service_agents_are_not_parsed(self) -> None:
        """'AWS Internal' and service names are no user agents to parse."""
        assert {} == user_agent("AWS Internal")
        assert "user_agent" not in enrich({"userAgent": "AWS Internal"}).ecs


@pytest.fixture
def geo_dbs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A city and an ASN database in MaxMind's format (tests/fixtures/geoip.py)."""
    yield write_databases(tmp_path)
    geo.use(None, None)


def _gz_object(*records: dict[str, Any]) -> bytes:
    import gzip

    return gzip.compress(json.dumps({"Records": list(records)}).encode(), mtime=0)


class TestGeoIP:
    def test_geo_and_as_of_the_source(self, corpus: Path, geo_dbs: tuple[Path, Path]) -> None:
        """With --geoip-db and --asn-db, a decoded record carries source.geo.* and source.as.*."""
        record = _load(corpus, "chain-1-iamuser-assume-role")  # from 203.0.113.58
        decoded = decode_object("k", _gz_object(record), geoip=geo_dbs)
        source = json.loads(decoded.documents[0].ndjson.splitlines()[1])["source"]
        assert {
            "ip": "203.0.113.58",
            "geo": LONDON,
            "as": {"number": 64500, "organization": {"name": "Example Transit"}},
        } == source

    def test_only_what_the_databases_know(self, corpus: Path, geo_dbs: tuple[Path, Path]) -> None:
        """An address in one database only gets that part; one in neither gets none."""
        ipv6 = _load(corpus, "sso-console-list-buckets-ipv6")
        private = _load(corpus, "cross-account-s3-get-object-awsaccount-vpce")  # 10.80.14.25
        decoded = decode_object("k", _gz_object(ipv6, private), geoip=geo_dbs)
        sources = [json.loads(d.ndjson.splitlines()[1])["source"] for d in decoded.documents]
        assert [
            {"ip": ipv6["sourceIPAddress"], "geo": {"country_iso_code": "DE", "country_name": "Germany"}},
            {"ip": "10.80.14.25"},
        ] == sources  # fmt: skip

    def test_off_by_default(self, corpus: Path, geo_dbs: tuple[Path, Path]) -> None:
        """Without the options, nothing is looked up (even after a run that had them)."""
        record = _load(corpus, "chain-1-iamuser-assume-role")
        decode_object("k", _gz_object(record), geoip=geo_dbs)
        decoded = decode_object("k", _gz_object(record))
        assert {"ip": "203.0.113.58"} == json.loads(decoded.documents[0].ndjson.splitlines()[1])[
            "source"
        ]
