"""A generator of realistic, synthetic CloudTrail archives (for the demo, tests and benchmarks).

Files follow CloudTrail's S3 layout and naming, one per account, region and five-minute window,
gzip-compressed ``{"Records": [...]}`` with the records out of time order, as CloudTrail writes
them. The mix resembles a real organisation: people in the console through IAM Identity Center
(some of them changing things by hand), Terraform from CI, the AWS CLI, SDKs in workloads, AWS
services acting on their own, failed calls, sign-ins and S3 data events. Everything is made up
(documentation IP ranges, example.com people) and deterministic for a given seed.
"""

from __future__ import annotations

import gzip
import random
import string
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

__all__ = ["SynthFile", "chaotic_record", "generate", "write_tree"]

Record = dict[str, Any]

ORG = "o-exampleorg1"
ACCOUNTS = ("111122223333", "444455556666", "777788889999")
REGIONS = ("us-east-1", "eu-west-1", "us-west-2")

UA_CONSOLE = (
    "console.amazonaws.com",
    "console.ec2.amazonaws.com",
    "AWS Internal",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3 Safari/605.1.15",
)
UA_TERRAFORM = (
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) "
    "terraform-provider-aws/5.39.1 (+https://registry.terraform.io/providers/hashicorp/aws) "
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.7 md/GOOS#linux md/GOARCH#amd64"
)
UA_CLI = (
    "aws-cli/2.15.25 Python/3.11.8 Linux/6.5.0-1014-aws exe/x86_64.ubuntu.22 prompt/off "
    "command/{cmd}"
)
UA_BOTO3 = (
    "Boto3/1.34.54 md/Botocore#1.34.54 ua/2.0 os/linux#5.10.209 md/arch#x86_64 lang/python#3.12.2"
)
UA_JAVA = "aws-sdk-java/2.25.6 Linux/5.10.209 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10"
UA_CFN = "cloudformation.amazonaws.com"
UA_PULUMI = "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.7 md/GOOS#linux Pulumi/3.108.1"


@dataclass(frozen=True, slots=True)
class SynthFile:
    key: str
    body: bytes  # gzip
    records: int
    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Actor:
    kind: str  # sso-console, sso-cli, iam-cli, terraform, cfn, lambda, service
    name: str
    ua: str
    console: bool


_PEOPLE = (
    "jane.doe@example.com",
    "raj.patel@example.com",
    "li.wei@example.com",
    "m.garcia@example.com",
    "sam.okafor@example.com",
)
_ACTORS = (
    *(_Actor("sso-console", p, "", True) for p in _PEOPLE),
    *(_Actor("sso-cli", p, UA_CLI, False) for p in _PEOPLE[:3]),
    _Actor("iam-cli", "alice.ops", UA_CLI, False),
    _Actor("iam-cli", "bob.dev", UA_CLI, False),
    _Actor("terraform", "gha-terraform", UA_TERRAFORM, False),
    _Actor("pulumi", "pulumi-deploy", UA_PULUMI, False),
    _Actor("cfn", "AWSCloudFormation", UA_CFN, False),
    _Actor("lambda", "user-sync", UA_BOTO3, False),
    _Actor("ecs", "payments-api", UA_JAVA, False),
    _Actor("service", "ec2.amazonaws.com", "ec2.amazonaws.com", False),
)
# relative frequency of each actor's calls
_WEIGHTS = (6, 3, 2, 2, 2, 3, 2, 2, 3, 3, 8, 1, 3, 12, 6, 4)


def _rid(rng: random.Random, n: int = 17) -> str:
    return "".join(rng.choices("0123456789abcdef", k=n))


def _key_id(rng: random.Random, prefix: str = "ASIA") -> str:
    return prefix + "".join(rng.choices(string.ascii_uppercase + "234567", k=16))


def _identity(rng: random.Random, actor: _Actor, account: str) -> Record:
    if actor.kind in ("iam-cli",):
        return {
            "type": "IAMUser",
            "principalId": "AIDA" + _key_id(rng, "")[:17],
            "arn": f"arn:aws:iam::{account}:user/{actor.name}",
            "accountId": account,
            "accessKeyId": _key_id(rng, "AKIA"),
            "userName": actor.name,
        }
    if actor.kind == "service":
        return {"type": "AWSService", "invokedBy": actor.name}
    if actor.kind.startswith("sso"):
        role = "AWSReservedSSO_AdministratorAccess_7c1e2f9a4b3d5e60"
        role_arn = f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}"
        session = actor.name
    else:
        role = {
            "terraform": "gha-terraform",
            "pulumi": "pulumi-deploy",
            "cfn": "cfn-exec-role",
            "lambda": "user-sync-lambda",
            "ecs": "payments-api-task",
        }[actor.kind]
        role_arn = f"arn:aws:iam::{account}:role/{role}"
        session = actor.name if actor.kind != "ecs" else _rid(rng, 32)
    ident: Record = {
        "type": "AssumedRole",
        "principalId": f"AROAKC74NFETSIQZBZJRE:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": _key_id(rng),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAKC74NFETSIQZBZJRE",
                "arn": role_arn,
                "accountId": account,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2024-03-05T13:00:00Z", "mfaAuthenticated": "false"},
        },
    }
    if actor.kind == "cfn":
        ident["invokedBy"] = "cloudformation.amazonaws.com"
    return ident


def _api(
    rng: random.Random, region: str, account: str
) -> tuple[str, str, bool, Record | None, Record | None]:
    """(eventSource, eventName, readOnly, requestParameters, responseElements)."""
    i = rng.randrange(24)
    inst = f"i-{_rid(rng)}"
    bucket = rng.choice(
        ("acme-shared-exports", "acme-release-artifacts", "acme-customer-data-prod")
    )
    fn = rng.choice(("nightly-report", "user-sync", "thumbnailer"))
    db = rng.choice(("orders-prod-db", "orders-staging-db", "analytics-db"))
    role = rng.choice(("DeployRole", "data-lake-reader", "ReadOnly"))
    sg = f"sg-{_rid(rng)}"
    table: list[tuple[str, str, bool, Record | None, Record | None]] = [
        (
            "ec2.amazonaws.com",
            "DescribeInstances",
            True,
            {"instancesSet": {}, "filterSet": {}},
            None,
        ),
        (
            "ec2.amazonaws.com",
            "RunInstances",
            False,
            {
                "instanceType": "t3.micro",
                "iamInstanceProfile": rng.choice([{"name": "app-profile"}, "app-profile"]),
                "disableApiTermination": rng.choice([True, {"value": True}]),
            },
            {"instancesSet": {"items": [{"instanceId": inst}]}},
        ),
        (
            "ec2.amazonaws.com",
            "TerminateInstances",
            False,
            {"instancesSet": {"items": [{"instanceId": inst}]}},
            None,
        ),
        (
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            False,
            {"groupId": sg, "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 443}]}},
            None,
        ),
        ("ec2.amazonaws.com", "DescribeSecurityGroups", True, {"securityGroupIdSet": {}}, None),
        ("ec2.amazonaws.com", "CreateSnapshot", False, {"volumeId": f"vol-{_rid(rng)}"}, None),
        ("s3.amazonaws.com", "ListBuckets", True, {"Host": "s3.amazonaws.com"}, None),
        (
            "s3.amazonaws.com",
            "GetObject",
            True,
            {"bucketName": bucket, "key": f"exports/{_rid(rng, 8)}.parquet"},
            None,
        ),
        (
            "s3.amazonaws.com",
            "PutObject",
            False,
            {"bucketName": bucket, "key": f"in/{_rid(rng, 8)}.json"},
            None,
        ),
        (
            "s3.amazonaws.com",
            "PutBucketPolicy",
            False,
            {
                "bucketName": bucket,
                "bucketPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": rng.choice(
                                ["*", {"AWS": [f"arn:aws:iam::{account}:root"]}]
                            ),
                            "Action": rng.choice(
                                ["s3:GetObject", ["s3:GetObject", "s3:ListBucket"]]
                            ),
                            "Resource": f"arn:aws:s3:::{bucket}/*",
                        }
                    ],
                },
            },
            None,
        ),
        (
            "s3.amazonaws.com",
            "PutBucketTagging",
            False,
            {
                "bucketName": bucket,
                "Tagging": {"TagSet": {"Tag": [{"Key": "owner", "Value": "platform"}]}},
            },
            None,
        ),
        ("iam.amazonaws.com", "GetRole", True, {"roleName": role}, None),
        ("iam.amazonaws.com", "ListRoles", True, None, None),
        (
            "iam.amazonaws.com",
            "CreateRole",
            False,
            {
                "roleName": f"{role}-{_rid(rng, 4)}",
                "assumeRolePolicyDocument": '{"Version":"2012-10-17"}',
            },
            None,
        ),
        (
            "iam.amazonaws.com",
            "PutRolePolicy",
            False,
            {"roleName": role, "policyName": "inline", "policyDocument": '{"Statement":[]}'},
            None,
        ),
        (
            "lambda.amazonaws.com",
            "UpdateFunctionConfiguration20150331v2",
            False,
            {"functionName": fn, "memorySize": rng.choice([256, 512, 1024])},
            None,
        ),
        ("lambda.amazonaws.com", "GetFunction20150331v2", True, {"functionName": fn}, None),
        (
            "rds.amazonaws.com",
            "ModifyDBInstance",
            False,
            {"dBInstanceIdentifier": db, "applyImmediately": True},
            {
                "endpoint": rng.choice(
                    [{"address": f"{db}.example.internal", "port": 5432}, f"{db}.example.internal"]
                )
            },
        ),
        ("rds.amazonaws.com", "DescribeDBInstances", True, {"dBInstanceIdentifier": db}, None),
        (
            "sts.amazonaws.com",
            "AssumeRole",
            True,
            {"roleArn": f"arn:aws:iam::{account}:role/{role}", "roleSessionName": "session"},
            {"credentials": {"accessKeyId": _key_id(rng), "expiration": "Mar 5, 2024, 3:03:10 PM"}},
        ),
        ("sts.amazonaws.com", "GetCallerIdentity", True, None, None),
        ("kms.amazonaws.com", "Decrypt", True, {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}, None),
        (
            "logs.amazonaws.com",
            "StartQuery",
            True,
            {
                "logGroupName": "/ecs/payments-api",
                "startTime": rng.choice([1709646000, "2024-03-05T13:40:00Z"]),
                "filter": rng.choice([{"Dimensions": {"Key": "SERVICE"}}, "status = 500"]),
            },
            None,
        ),
        (
            "cloudformation.amazonaws.com",
            "DescribeStacks",
            True,
            {"stackName": "LegacyWorkersStack"},
            None,
        ),
    ]
    return table[i]


def _record(rng: random.Random, when: datetime, account: str, region: str) -> Record:
    actor = rng.choices(_ACTORS, weights=_WEIGHTS)[0]
    source, name, read_only, req, resp = _api(rng, region, account)
    if actor.kind == "sso-console" and rng.random() < 0.06:
        source, name, read_only, req, resp = (
            "signin.amazonaws.com",
            "ConsoleLogin",
            False,
            None,
            {"ConsoleLogin": "Success"},
        )
    ua = (
        actor.ua.format(cmd=f"{source.split('.')[0]}.{name.lower()}")
        if actor.ua
        else rng.choice(UA_CONSOLE)
    )
    rec: Record = {
        "eventVersion": rng.choice(("1.08", "1.09", "1.10")),
        "userIdentity": _identity(rng, actor, account),
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1"
        if source in ("iam.amazonaws.com", "signin.amazonaws.com")
        else region,
        "sourceIPAddress": (
            actor.name
            if actor.kind == "service"
            else rng.choice(("198.51.100.42", "203.0.113.7", "192.0.2.15", "2001:db8::17"))
        ),
        "userAgent": ua,
        "requestParameters": req,
        "responseElements": resp,
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "readOnly": read_only,
        "eventType": "AwsConsoleSignIn" if name == "ConsoleLogin" else "AwsApiCall",
        "managementEvent": name not in ("GetObject", "PutObject"),
        "recipientAccountId": account,
        "eventCategory": "Data" if name in ("GetObject", "PutObject") else "Management",
    }
    if actor.console and name != "ConsoleLogin":
        rec["sessionCredentialFromConsole"] = "true"
    else:
        rec["tlsDetails"] = {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com",
        }
    if rng.random() < 0.03 and name != "ConsoleLogin":
        code = "Client.UnauthorizedOperation" if source.startswith("ec2") else "AccessDenied"
        rec["errorCode"] = code
        rec["errorMessage"] = (
            f"User: {rec['userIdentity'].get('arn', 'unknown')} "
            f"is not authorized to perform: {name}"
        )
        rec["responseElements"] = None
    return rec


def generate(
    events: int = 20_000,
    *,
    seed: int = 7,
    accounts: tuple[str, ...] = ACCOUNTS,
    regions: tuple[str, ...] = REGIONS,
    days: int = 3,
    start: datetime = datetime(2024, 3, 4, tzinfo=UTC),
    per_file: int | None = None,
    make_record: Callable[[random.Random, datetime, str, str], Record] = _record,
) -> Iterator[SynthFile]:
    """Yield log files holding ``events`` records in all, spread over accounts, regions and days.

    The last account is delivered under an organization trail (``AWSLogs/o-.../ACCOUNT/...``).
    """
    rng = random.Random(seed)
    slots = [(a, r, d) for a in accounts for r in regions for d in range(days)]
    per_slot = max(1, events // len(slots))
    per_file = per_file or max(1, min(200, per_slot // 4 or 1))
    remaining = events
    for n, (account, region, day) in enumerate(slots):
        quota = remaining if n == len(slots) - 1 else min(per_slot, remaining)
        remaining -= quota
        base = start + timedelta(days=day)
        window = 0
        while quota > 0:
            count = min(per_file, quota)
            quota -= count
            t0 = base + timedelta(minutes=5 * (window % 288))
            window += 1
            recs = [
                make_record(rng, t0 + timedelta(seconds=rng.randrange(300)), account, region)
                for _ in range(count)
            ]
            rng.shuffle(recs)
            stamp = (t0 + timedelta(minutes=5)).strftime("%Y%m%dT%H%MZ")
            org = f"{ORG}/" if account == accounts[-1] and len(accounts) > 1 else ""
            unique = "".join(rng.choices(string.ascii_letters + string.digits, k=16))
            key = (
                f"AWSLogs/{org}{account}/CloudTrail/{region}/{t0:%Y/%m/%d}/"
                f"{account}_CloudTrail_{region}_{stamp}_{unique}.json.gz"
            )
            body = gzip.compress(orjson.dumps({"Records": recs}), compresslevel=6, mtime=0)
            yield SynthFile(key, body, count, tuple(r["eventID"] for r in recs))


def write_tree(root: Path, files: Iterator[SynthFile]) -> tuple[int, int]:
    """Write files below ``root`` in the bucket layout; returns (files, records)."""
    n_files = n_records = 0
    for f in files:
        path = root / f.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.body)
        n_files += 1
        n_records += f.records
    return n_files, n_records


_CHAOS_KEYS = (
    "filter", "startTime", "endpoint", "iamInstanceProfile", "disableApiTermination", "roleArn",
    "bucketName", "credentials", "policy", "tags", "name", "value", "items", "a.b", "", "Key",
    "x-amz-date", "nested", "configuration", "accessKeyId",
)  # fmt: skip


def _chaos(rng: random.Random, depth: int) -> Any:
    """A value of a random JSON shape: the kind of variety requestParameters has across APIs."""
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randrange(-(2**40), 2**40)
    if kind == 3:
        return rng.random() * 1e6
    if kind == 4:
        return "".join(rng.choices(string.ascii_letters + " :/-_é€", k=rng.randrange(0, 40)))
    if kind == 5:
        return "2024-03-05T14:00:12Z" if rng.random() < 0.5 else "Mar 5, 2024, 3:03:10 PM"
    if kind == 6:
        return [_chaos(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(_CHAOS_KEYS): _chaos(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def chaotic_record(rng: random.Random, when: datetime, account: str, region: str) -> Record:
    """A realistic record whose payloads (requestParameters, responseElements, ...) take random
    shapes, including conflicting types for the same key; for mapping-stability tests."""
    rec = _record(rng, when, account, region)
    for field in (
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "serviceEventDetails",
    ):
        if rng.random() < 0.8:
            rec[field] = {
                rng.choice(_CHAOS_KEYS): _chaos(rng, 1) for _ in range(rng.randrange(1, 6))
            }
    return rec
