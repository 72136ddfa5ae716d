"""CloudTrail records made for the Sigma rules of ``tests/fixtures/sigma``: for each rule the
events it must find (``*-hit*``) and near misses it must not (``*-miss*``), often in another
letter case than the rule's values. ``EXPECTED`` says which event ids each rule finds."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

__all__ = ["EVENTS", "EXPECTED", "write_archive"]

ACCOUNT = "111122223333"
_KEY = (
    f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/20/"
    f"{ACCOUNT}_CloudTrail_us-east-1_20261120T1000Z_sigmaRuleTests01.json.gz"
)
_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0"
_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/17.1"


def _user(name: str, kind: str = "IAMUser", **more: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "principalId": f"AIDAEXAMPLE{name.upper()}",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "accountId": ACCOUNT,
        "userName": name,
        **more,
    }


def _event(eid: str, source: str, name: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": _user("alice"),
        "eventTime": f"2026-11-20T10:{len(EVENTS):02d}:00Z",
        "eventSource": f"{source}.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64",
        "requestParameters": None,
        "responseElements": None,
        "requestID": f"req-{eid}",
        "eventID": eid,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    record.update(fields)
    return record


EVENTS: list[dict[str, Any]] = []


def _add(eid: str, source: str, name: str, **fields: Any) -> None:
    EVENTS.append(_event(eid, source, name, **fields))


# contains_multiword: userAgent|contains 'WINDOWS NT'
_add("ua-hit", "signin", "ConsoleLogin", userAgent=_WINDOWS, eventType="AwsConsoleSignIn")
_add("ua-miss", "signin", "ConsoleLogin", userAgent=_MAC, eventType="AwsConsoleSignIn")
# mfa_nested: additionalEventData.MFAUsed 'NO', responseElements.ConsoleLogin 'success'
_signin = {"eventType": "AwsConsoleSignIn", "userAgent": _MAC}
_add(
    "mfa-hit",
    "signin",
    "ConsoleLogin",
    additionalEventData={"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com/"},
    responseElements={"ConsoleLogin": "Success"},
    **_signin,
)
_add(
    "mfa-miss",
    "signin",
    "ConsoleLogin",
    additionalEventData={"MFAUsed": "Yes"},
    responseElements={"ConsoleLogin": "Success"},
    **_signin,
)
# startswith_endswith: eventName|startswith 'delete', requestParameters.name|endswith '-PROD'
_add("trail-hit", "cloudtrail", "DeleteTrail", requestParameters={"name": "audit-prod"})
_add("trail-miss", "cloudtrail", "DeleteTrail", requestParameters={"name": "audit-dev"})
# regex: userName re '^svc-[a-z]+-[0-9]+$' (case-sensitive), eventName re|i 'bucket(policy|acl)'
_add("re-hit", "s3", "PutBucketPolicy", userIdentity=_user("svc-backup-01"))
_add("re-miss-case", "s3", "PutBucketPolicy", userIdentity=_user("svc-Backup-01"))
_add("re-miss-name", "s3", "PutBucketTagging", userIdentity=_user("svc-backup-01"))
# contains_all: errorMessage contains 'NOT AUTHORIZED' and 'iam:passrole'
_denied = "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: "
_add(
    "all-hit",
    "ec2",
    "RunInstances",
    errorCode="Client.UnauthorizedOperation",
    errorMessage=_denied + "iam:PassRole on resource: arn:aws:iam::111122223333:role/Admin",
)
_add(
    "all-miss",
    "iam",
    "GetRole",
    errorCode="AccessDenied",
    errorMessage=_denied + "iam:GetRole on resource: arn:aws:iam::111122223333:role/Admin",
)
# lists_one_of: cloudtrail and (1 of [stoplogging, UpdateTrail] or DELETETRAIL)
_add("list-hit-stop", "cloudtrail", "StopLogging", requestParameters={"name": "main"})
_add("list-miss", "cloudtrail", "StartLogging", requestParameters={"name": "main"})
_add("list-miss-source", "logs", "DeleteTrail")
# null_field: CreateAccessKey with no userIdentity.invokedBy
_add("null-hit", "iam", "CreateAccessKey")
_add(
    "null-miss",
    "iam",
    "CreateAccessKey",
    userIdentity=_user("alice", invokedBy="cloudformation.amazonaws.com"),
)
# booleans: readOnly false, requestParameters.forceDeleteWithoutRecovery true
_add(
    "bool-hit",
    "secretsmanager",
    "DeleteSecret",
    requestParameters={"secretId": "db-password", "forceDeleteWithoutRecovery": True},
)
_add(
    "bool-miss",
    "secretsmanager",
    "DeleteSecret",
    requestParameters={"secretId": "db-password", "forceDeleteWithoutRecovery": False},
)
# numbers: requestParameters.maxCount 20
_add("num-hit", "ec2", "RunInstances", requestParameters={"minCount": 1, "maxCount": 20})
_add("num-miss", "ec2", "RunInstances", requestParameters={"minCount": 1, "maxCount": 2})
# fieldref: recipientAccountId equals userIdentity.accountId
_add("ref-hit", "sts", "GetSessionToken")
_add("ref-miss", "sts", "GetSessionToken", recipientAccountId="444455556666")
# cidr: sourceIPAddress in 198.51.100.0/24
_add("cidr-hit", "iam", "ListUsers", sourceIPAddress="198.51.100.7", readOnly=True)
_add("cidr-miss", "iam", "ListUsers", sourceIPAddress="198.51.101.7", readOnly=True)
# whole_object: requestParameters contains 'AdministratorAccess', under any key
_add(
    "obj-hit",
    "iam",
    "AttachUserPolicy",
    requestParameters={
        "userName": "bob",
        "policyArn": "arn:aws:iam::aws:policy/administratoraccess",
    },
)
_add(
    "obj-miss",
    "iam",
    "AttachUserPolicy",
    requestParameters={"userName": "bob", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
)
# filters_all_of: iam CreateLoginProfile by an IAMUser, not break-glass, not failed
_profile = {"requestParameters": {"userName": "carol"}}
_add("filt-hit", "iam", "CreateLoginProfile", **_profile)
_add(
    "filt-miss-breakglass",
    "iam",
    "CreateLoginProfile",
    userIdentity=_user("break-glass-1"),
    **_profile,
)
_add(
    "filt-miss-failed",
    "iam",
    "CreateLoginProfile",
    errorCode="AccessDenied",
    errorMessage="denied",
    **_profile,
)
_add(
    "filt-miss-role",
    "iam",
    "CreateLoginProfile",
    userIdentity=_user("deployer", kind="AssumedRole"),
    **_profile,
)
# nested_arrays: requestParameters.ipPermissions.items.ipRanges.items.cidrIp '0.0.0.0/0'
_ssh = {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22}


def _ingress(cidr: str) -> dict[str, Any]:
    ranges = {"items": [{"cidrIp": "10.0.0.0/8"}, {"cidrIp": cidr}]}
    return {"groupId": "sg-0abc", "ipPermissions": {"items": [{**_ssh, "ipRanges": ranges}]}}


_add("arr-hit", "ec2", "AuthorizeSecurityGroupIngress", requestParameters=_ingress("0.0.0.0/0"))
_add("arr-miss", "ec2", "AuthorizeSecurityGroupIngress", requestParameters=_ingress("192.0.2.0/24"))

# rule file (tests/fixtures/sigma/NAME.yml) -> the event ids it finds
EXPECTED: dict[str, set[str]] = {
    "contains_multiword": {"ua-hit"},
    "mfa_nested": {"mfa-hit"},
    "startswith_endswith": {"trail-hit"},
    "regex": {"re-hit"},
    "contains_all": {"all-hit"},
    "lists_one_of": {"list-hit-stop", "trail-hit", "trail-miss"},
    "null_field": {"null-hit"},
    "booleans": {"bool-hit"},
    "numbers": {"num-hit"},
    "fieldref": {"ref-hit"},
    "cidr": {"cidr-hit"},
    "whole_object": {"obj-hit"},
    "filters_all_of": {"filt-hit"},
    "nested_arrays": {"arr-hit"},
}


def write_archive(root: Path) -> Path:
    """The events as one CloudTrail log file below ``root``, laid out like the bucket."""
    path = root / _KEY
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": EVENTS}).encode(), mtime=0))
    return root
