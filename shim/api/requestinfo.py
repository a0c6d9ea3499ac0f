"""RequestInfo and UserInfo: who is calling and what they ask for, as authorization sees it
(k8s.io/apiserver pkg/endpoints/request RequestInfo and pkg/authentication/user Info)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class UserInfo:
    name: str
    uid: str = ""
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RequestInfo:
    is_resource_request: bool
    path: str
    verb: str                      # get list watch create update patch delete deletecollection
    api_group: str = ""            # (non-resource requests: the lowercase HTTP method)
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def resource_verb(method: str, has_name: bool, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if has_name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if has_name else "deletecollection"}.get(method, method.lower())
