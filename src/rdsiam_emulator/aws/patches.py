"""The two places where the emulator changes moto, kept together and idempotent.

1. **DbiResourceId**: moto gives every DB instance the same constant
   ``db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U``, so policies could not tell instances apart.
   ``DBInstance.dbi_resource_id`` becomes a property that replaces that constant with a unique,
   realistic id (``db-`` + 26 upper-case letters/digits) the first time moto assigns it;
   ``describe_db_instances`` and the ``dbi-resource-id`` filter read the same attribute, and the id
   lives as long as the instance.
2. **STS sessions**: moto drops ``PolicyArns`` and session ``Tags`` of AssumeRole*, ignores
   ``Policy`` of AssumeRoleWithSAML and answers GetSessionToken/GetFederationToken with one fixed
   example key that records nothing. The wrappers below record what the emulator needs on moto's
   own objects (``AssumedRole.rdsiam_session``) and, for GetSessionToken/GetFederationToken called
   with an IAM user's key, issue a real temporary key in that account and remember who asked for it
   (``STSBackend.rdsiam_tokens``), so tokens signed with it resolve to that user.
3. **User permissions boundaries**: moto drops ``CreateUser(PermissionsBoundary=…)`` and has no
   ``PutUserPermissionsBoundary``/``DeleteUserPermissionsBoundary``. The boundary ARN is stored on
   moto's ``User`` (``permissions_boundary_arn``, as moto's ``Role`` has it), validated as moto
   validates a role's, and ``GetUser`` returns it. A user created before ``install()`` carries no
   ``BOUNDARY_RECORDED`` mark: its boundary is reported as not evaluated, never assumed absent.
4. **Disabling a policy type**: moto keeps the attachments; AWS detaches every policy of that type
   from the root, OUs and accounts, and re-enabling SCPs leaves every entity with only the default
   ``FullAWSAccess`` (Organizations User Guide, disable-policy-type.html).
The lookup (``moto_state``) only reads; only these wrappers write, at issue time, in moto's thread.
5. **Aurora IAM flag**: a member of an IAM-enabled cluster reports
   ``IAMDatabaseAuthenticationEnabled: False`` (the member's own unused flag), and
   ``ModifyDBCluster(EnableIAMDatabaseAuthentication=…)`` stores the value beside the one
   ``DescribeDBClusters`` reads. Members now report their cluster's flag, and the cluster's flag
   is the one ``ModifyDBCluster`` sets (IAM is a cluster setting on Aurora).
"""

from __future__ import annotations

import functools
import importlib
import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rdsiam_emulator.aws.lazy import when_imported

MOTO_CONSTANT_DBI_RESOURCE_ID = "db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U"
MOTO_EXAMPLE_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
BOUNDARY_RECORDED = "rdsiam_boundary_recorded"
"""Set on a moto ``User`` created or given a boundary through the patched API: its boundary state
is known. A user without it was created before ``install()`` (moto drops the boundary then)."""
_ALPHABET = string.ascii_uppercase + string.digits
_lock = threading.RLock()  # a patch may import a module whose own hook patches (nested)


def new_dbi_resource_id() -> str:
    """A realistic DbiResourceId: ``db-`` and 26 upper-case alphanumerics."""
    return "db-" + "".join(secrets.choice(_ALPHABET) for _ in range(26))


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What moto forgets about an STS session; stored on moto's objects by the wrappers."""

    api: str
    issued_at: datetime
    expires_at: datetime | None = None
    policy: str | None = None
    policy_arns: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    mfa: bool = False
    # GetSessionToken / GetFederationToken only:
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    user_name: str | None = None
    user_arn: str | None = None
    account_id: str | None = None
    federated_name: str | None = None


def install() -> None:
    """Apply the patches (safe to call from anywhere, any number of times).

    Each patch checks moto's class itself rather than a process-wide flag: a moto module imported
    again (pytester's in-process runs drop the modules they imported) gets patched again."""
    for _trigger, modules, patches in _groups():
        _apply(modules, patches)


def install_when_imported() -> None:
    """``install()`` each patch when moto imports the service module it changes (at once for those
    already imported): a session that never touches RDS or Organizations never imports them."""
    for trigger, modules, patches in _groups():
        when_imported(trigger, functools.partial(_apply, modules, patches))


def _groups() -> tuple[tuple[str, tuple[str, ...], tuple[Callable[[], None], ...]], ...]:
    """(the module whose import triggers them, the modules they read, the patches)."""
    return (
        ("moto.rds", ("moto.rds.models",), (_patch_dbi_resource_id, _patch_cluster_iam_flag)),
        ("moto.sts", ("moto.sts.responses",), (_patch_sts,)),
        ("moto.iam", ("moto.core.responses", "moto.core.serialize", "moto.iam.models",
                      "moto.iam.responses"), (_patch_user_boundaries,)),
        ("moto.organizations", ("moto.organizations.utils", "moto.organizations.models"),
         (_patch_policy_types,)),
    )


def _apply(modules: tuple[str, ...], patches: tuple[Callable[[], None], ...]) -> None:
    # import first, lock after: holding the lock while waiting for a module another thread is
    # importing (whose post-import hook wants the lock) would deadlock
    for module in modules:
        importlib.import_module(module)
    with _lock:
        for patch in patches:
            patch()


# ------------------------------------------------------------------------------- DbiResourceId


def _patch_dbi_resource_id() -> None:
    from moto.rds.models import DBInstance

    if isinstance(DBInstance.__dict__.get("dbi_resource_id"), property):
        return

    def get(self: Any) -> str:
        value = self.__dict__.get("_rdsiam_dbi_resource_id")
        if value is None:
            value = new_dbi_resource_id()
            self.__dict__["_rdsiam_dbi_resource_id"] = value
        return str(value)

    def set_(self: Any, value: str) -> None:
        current = self.__dict__.get("_rdsiam_dbi_resource_id")
        if value == MOTO_CONSTANT_DBI_RESOURCE_ID:
            if current is None:
                self.__dict__["_rdsiam_dbi_resource_id"] = new_dbi_resource_id()
            return
        self.__dict__["_rdsiam_dbi_resource_id"] = value

    setattr(DBInstance, "dbi_resource_id",  # noqa: B010 - mypy sees moto's str attribute
            property(get, set_, doc="unique DbiResourceId (rdsiam-emulator)"))


# ------------------------------------------------------------------------------------------ STS


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _policy_arns(response: Any) -> tuple[str, ...]:
    raw = response._get_param("PolicyArns") or []
    out: list[str] = []
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, dict):
            arn = item.get("arn") or item.get("Arn")
            if isinstance(arn, str):
                out.append(arn)
    return tuple(out)


def _tags(response: Any) -> tuple[tuple[str, str], ...]:
    raw = response._get_param("Tags") or []
    out: list[tuple[str, str]] = []
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, dict) and "Key" in item:
            out.append((str(item["Key"]), str(item.get("Value", ""))))
    return tuple(out)


def _now() -> datetime:
    from moto.sts import models  # moto's clock (aws_clock moves it), so records agree with moto

    utcnow: Callable[[], datetime] = getattr(models, "utcnow")  # noqa: B009 - not re-exported
    return _aware(utcnow())


Method = Callable[[Any], Any]


def _wrap_assume(api: str, original: Method) -> Method:
    def wrapper(self: Any) -> Any:
        result = original(self)
        role = result.result.get("Credentials") if isinstance(result.result, dict) else None
        if role is not None and hasattr(role, "access_key_id"):
            policy = role.policy
            if api == "AssumeRoleWithSAML" and not policy:
                policy = self._get_param("Policy")
            role.rdsiam_session = SessionRecord(
                api=api, issued_at=_now(), expires_at=_aware(role.expiration), policy=policy,
                policy_arns=_policy_arns(self), tags=_tags(self),
                mfa=api == "AssumeRole" and bool(self._get_param("SerialNumber")),
            )
        return result

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


def _wrap_token(api: str, original: Method) -> Method:
    def wrapper(self: Any) -> Any:
        result = original(self)
        try:
            _issue_real_key(self, api, result)
        except Exception:  # recording is best effort: moto's own answer still stands
            return result
        return result

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


def _issue_real_key(response: Any, api: str, result: Any) -> None:
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends
    from moto.sts.utils import random_session_token

    payload = result.result
    caller_key = response.get_access_key()
    account_id = response.current_account
    partition = response.partition
    iam = iam_backends[account_id][partition]
    key = iam.access_keys.get(caller_key)
    if key is None or key.user_name is None or key.user_name not in iam.users:
        return  # not an IAM user's long-term key: keep moto's answer (documented limitation)
    user = iam.users[key.user_name]
    temp = iam.create_temp_access_key()
    token = random_session_token()
    creds = payload["Credentials"]
    expires = _aware(creds["Expiration"])
    policy = response._get_param("Policy") if api == "GetFederationToken" else None
    record = SessionRecord(
        api=api, issued_at=_now(), expires_at=expires, policy=policy,
        policy_arns=_policy_arns(response) if api == "GetFederationToken" else (),
        tags=_tags(response) if api == "GetFederationToken" else (),
        mfa=bool(response._get_param("SerialNumber")) and api == "GetSessionToken",
        access_key_id=temp.access_key_id, secret_access_key=temp.secret_access_key,
        session_token=token, user_name=user.name, user_arn=user.arn, account_id=account_id,
        federated_name=response._get_param("Name"),
    )
    backend = sts_backends[account_id][partition]
    tokens: dict[str, SessionRecord] = backend.__dict__.setdefault("rdsiam_tokens", {})
    tokens[temp.access_key_id] = record
    creds["AccessKeyId"] = temp.access_key_id
    creds["SecretAccessKey"] = temp.secret_access_key
    creds["SessionToken"] = token


def _patch_sts() -> None:
    from moto.sts.responses import TokenResponse

    for name, api, wrap in (
        ("assume_role", "AssumeRole", _wrap_assume),
        ("assume_role_with_web_identity", "AssumeRoleWithWebIdentity", _wrap_assume),
        ("assume_role_with_saml", "AssumeRoleWithSAML", _wrap_assume),
        ("get_session_token", "GetSessionToken", _wrap_token),
        ("get_federation_token", "GetFederationToken", _wrap_token),
    ):
        original = getattr(TokenResponse, name)
        if hasattr(original, "__wrapped__"):
            continue
        setattr(TokenResponse, name, wrap(api, original))


# ------------------------------------------------------------------------ user permissions boundary


def _check_boundary_arn(backend: Any, arn: str) -> None:
    """Refuse what moto refuses for a role's boundary (same error, same wording)."""
    from moto.iam.exceptions import IAMException

    if not backend.policy_arn_regex.match(arn):
        raise IAMException(
            "InvalidParameterValue",
            f"Value ({arn}) for parameter PermissionsBoundary is invalid.",
        )


def _user_boundary(self: Any) -> dict[str, str] | None:
    arn = self.__dict__.get("permissions_boundary_arn")
    if not arn:
        return None
    return {"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn}


def _patch_user_boundaries() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.core.serialize import never_return
    from moto.iam.models import User
    from moto.iam.responses import IamResponse

    # models and responses are checked apart: either module may have been imported afresh
    if not isinstance(User.__dict__.get("permissions_boundary"), property):
        User.permissions_boundary_arn = None  # type: ignore[attr-defined]
        setattr(User, "permissions_boundary",  # noqa: B010 - a new attribute on moto's class
                property(_user_boundary, doc="the user's boundary (rdsiam-emulator)"))
    if "put_user_permissions_boundary" in IamResponse.__dict__:
        return
    original_create = IamResponse.create_user

    def create_user(self: Any) -> Any:
        arn = self._get_param("PermissionsBoundary")
        if arn:
            _check_boundary_arn(self.backend, arn)  # before creating: a refusal creates nothing
        result = original_create(self)
        user = self.backend.get_user(self._get_param("UserName"))
        user.__dict__[BOUNDARY_RECORDED] = True  # a user without it may have lost its boundary
        if arn:
            user.permissions_boundary_arn = arn
        return result

    def put_user_permissions_boundary(self: Any) -> ActionResult:
        arn = self._get_param("PermissionsBoundary")
        _check_boundary_arn(self.backend, arn or "")
        user = self.backend.get_user(self._get_param("UserName"))
        user.permissions_boundary_arn = arn
        user.__dict__[BOUNDARY_RECORDED] = True
        return EmptyResult()

    def delete_user_permissions_boundary(self: Any) -> ActionResult:
        user = self.backend.get_user(self._get_param("UserName"))
        user.permissions_boundary_arn = None
        user.__dict__[BOUNDARY_RECORDED] = True
        return EmptyResult()

    # ListUsers leaves the boundary out, as AWS's listing operations do (API_ListUsers)
    IamResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER[
        "ListUsersResponse.Users.User.PermissionsBoundary"] = never_return
    create_user.__wrapped__ = original_create  # type: ignore[attr-defined]
    IamResponse.create_user = create_user  # type: ignore[method-assign]
    setattr(IamResponse, "put_user_permissions_boundary",  # noqa: B010
            put_user_permissions_boundary)
    setattr(IamResponse, "delete_user_permissions_boundary",  # noqa: B010
            delete_user_permissions_boundary)


# ------------------------------------------------------------------- Organizations policy types


def _patch_policy_types() -> None:
    from moto.organizations import utils
    from moto.organizations.models import OrganizationsBackend

    if hasattr(OrganizationsBackend.disable_policy_type, "__wrapped__"):
        return
    original_disable = OrganizationsBackend.disable_policy_type
    original_enable = OrganizationsBackend.enable_policy_type

    def disable_policy_type(self: Any, **kwargs: str) -> dict[str, Any]:
        result = original_disable(self, **kwargs)
        for entity in [*self.ou, *self.accounts]:
            for policy in [p for p in entity.attached_policies if p.type == kwargs["PolicyType"]]:
                entity.attached_policies.remove(policy)
                if entity in policy.attachments:
                    policy.attachments.remove(entity)
        return result

    def enable_policy_type(self: Any, **kwargs: str) -> dict[str, Any]:
        result = original_enable(self, **kwargs)
        if kwargs["PolicyType"] == "SERVICE_CONTROL_POLICY":
            for entity in [*self.ou, *self.accounts]:
                if not any(p.type == "SERVICE_CONTROL_POLICY" for p in entity.attached_policies):
                    self.attach_policy(PolicyId=utils.DEFAULT_SCP_POLICY_ID, TargetId=entity.id)
        return result

    disable_policy_type.__wrapped__ = original_disable  # type: ignore[attr-defined]
    enable_policy_type.__wrapped__ = original_enable  # type: ignore[attr-defined]
    setattr(OrganizationsBackend, "disable_policy_type", disable_policy_type)  # noqa: B010
    setattr(OrganizationsBackend, "enable_policy_type", enable_policy_type)  # noqa: B010


# ------------------------------------------------------------------------------ Aurora IAM flag


def _patch_cluster_iam_flag() -> None:
    from moto.rds.models import DBCluster, DBInstanceClustered

    if isinstance(DBCluster.__dict__.get("enable_iam_database_authentication"), property):
        return

    def cluster_get(self: Any) -> bool:
        return bool(self.__dict__.get("iam_auth"))

    def cluster_set(self: Any, value: Any) -> None:
        self.__dict__["iam_auth"] = bool(value)

    # ModifyDBCluster sets this name; DescribeDBClusters reads iam_auth
    setattr(DBCluster, "enable_iam_database_authentication",  # noqa: B010
            property(cluster_get, cluster_set, doc="the cluster's IAM flag (rdsiam-emulator)"))

    def member_flag(self: Any) -> bool:
        return bool(self.cluster.iam_database_authentication_enabled)

    setattr(DBInstanceClustered, "iam_database_authentication_enabled",  # noqa: B010
            property(member_flag, doc="the cluster's IAM flag (rdsiam-emulator)"))
