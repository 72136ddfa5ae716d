"""Who is behind a call: the human or workload, from ``userIdentity``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["actor", "permission_set"]

_SSO_PATH = "/aws-reserved/sso.amazonaws.com/"
_SSO_PREFIX = "AWSReservedSSO_"
_HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"


def permission_set(role_name: str) -> str:
    """``AWSReservedSSO_AdministratorAccess_7c1e2f9a4b3d5e60`` → ``AdministratorAccess``."""
    name = role_name.removeprefix(_SSO_PREFIX)
    head, sep, tail = name.rpartition("_")
    return head if sep and len(tail) == 16 and all(c in "0123456789abcdef" for c in tail) else name


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _after_colon(principal_id: str | None) -> str | None:
    if principal_id and ":" in principal_id:
        return principal_id.split(":", 1)[1] or None
    return None


def actor(record: Mapping[str, Any], ct: Mapping[str, Any]) -> dict[str, Any]:
    """``{"actor": {name, type, account_id, role, session, permission_set, ...}}`` or nothing."""
    ui = record.get("userIdentity")
    if not isinstance(ui, dict) or not ui:
        return {}
    kind = _s(ui.get("type"))
    account = _s(ui.get("accountId")) or _s(record.get("recipientAccountId"))
    out: dict[str, Any] = {"account_id": account}
    ctx = _m(ui.get("sessionContext"))
    issuer = _m(ctx.get("sessionIssuer"))
    issuer_name = _s(issuer.get("userName"))
    source_identity = _s(ctx.get("sourceIdentity"))

    if kind == "IAMUser":
        name = _s(ui.get("userName"))
        out.update(type="iam-user", name="unknown" if name in (None, _HIDDEN) else name)
    elif kind == "AssumedRole":
        arn = _s(ui.get("arn")) or ""
        session = _after_colon(_s(ui.get("principalId"))) or arn.rsplit("/", 1)[-1] or None
        role = issuer_name or (arn.split("/")[1] if arn.count("/") >= 2 else None)
        sso = bool(role and role.startswith(_SSO_PREFIX)) or _SSO_PATH in (
            _s(issuer.get("arn")) or ""
        )
        out.update(
            type="sso-user" if sso else "assumed-role", name=session, role=role, session=session
        )
        if sso and role:
            out["permission_set"] = permission_set(role)
    elif kind == "Root":
        out.update(type="root", name="root")
    elif kind == "AWSService" or (kind is None and _s(ui.get("invokedBy"))):
        invoked = _s(ui.get("invokedBy")) or ""
        name = invoked if invoked.endswith(".amazonaws.com") else _s(record.get("eventSource"))
        out.update(type="aws-service", name=name or invoked or None)
    elif kind == "SAMLUser":
        out.update(
            type="saml-user", name=_s(ui.get("userName")), provider=_s(ui.get("identityProvider"))
        )
    elif kind == "WebIdentityUser":
        out.update(
            type="web-identity-user",
            name=_s(ui.get("userName")),
            provider=_s(ui.get("identityProvider")),
        )
    elif kind == "FederatedUser":
        out.update(
            type="federated-user", name=_after_colon(_s(ui.get("principalId"))), role=issuer_name
        )
    elif kind == "AWSAccount":
        out.update(type="aws-account", name=_after_colon(_s(ui.get("principalId"))) or account)
    elif kind == "IdentityCenterUser" or isinstance(ui.get("onBehalfOf"), dict):
        out.update(type="identity-center-user", name=_s(ui.get("userName")))
    else:
        out.update(type=(kind or "unknown").lower(), name=_s(ui.get("userName")))
    if source_identity:
        out["source_identity"] = source_identity
    return {"actor": {k: v for k, v in out.items() if v is not None}}
