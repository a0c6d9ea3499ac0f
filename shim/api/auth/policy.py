"""The default RBAC policy created at bootstrap (the real apiserver's bootstrappolicy,
limited to the roles that matter for the kinds kubeshim serves).

ClusterRoles: cluster-admin; the user-facing admin, edit, view (aggregated from
system:aggregate-to-admin/-edit/-view, whose rules are written resolved into the
stored objects too); system:discovery, system:basic-user, system:public-info-viewer,
system:auth-delegator, system:monitoring, system:service-account-issuer-discovery.
ClusterRoleBindings: cluster-admin → group system:masters; system:discovery and
system:basic-user → system:authenticated; system:public-info-viewer →
system:authenticated + system:unauthenticated; system:service-account-issuer-discovery
→ system:serviceaccounts. Existing objects are left as they are (auto-update of
changed defaults is not done).
"""
from __future__ import annotations

from shim.api import errors

CRUD = ["create", "delete", "deletecollection", "patch", "update"]
READ = ["get", "list", "watch"]
ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
ANNOTATIONS = {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def _r(groups, resources, verbs, names=None) -> dict:
    d = {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}
    if names:
        d["resourceNames"] = list(names)
    return d


def _u(urls, verbs) -> dict:
    return {"nonResourceURLs": list(urls), "verbs": list(verbs)}


AGGREGATE_TO_ADMIN = [
    _r(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
    _r(["rbac.authorization.k8s.io"], ["rolebindings", "roles"], ALL),
]
AGGREGATE_TO_EDIT = [
    _r([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
              "services/proxy"], READ),
    _r([""], ["serviceaccounts"], ["impersonate"]),
    _r([""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], CRUD),
    _r([""], ["pods/eviction"], ["create"]),
    _r([""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
              "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
              "services/proxy"], CRUD),
    _r([""], ["serviceaccounts/token"], ["create"]),
    _r(["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                  "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"], CRUD),
    _r(["autoscaling"], ["horizontalpodautoscalers"], CRUD),
    _r(["batch"], ["cronjobs", "jobs"], CRUD),
    _r(["extensions"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                        "ingresses", "networkpolicies", "replicasets", "replicasets/scale",
                        "replicationcontrollers/scale"], CRUD),
    _r(["policy"], ["poddisruptionbudgets"], CRUD),
    _r(["networking.k8s.io"], ["ingresses", "networkpolicies"], CRUD),
    _r(["coordination.k8s.io"], ["leases"], ALL),
]
AGGREGATE_TO_VIEW = [
    _r([""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
              "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
              "services", "services/status"], READ),
    _r([""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
              "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"], READ),
    _r([""], ["namespaces"], READ),
    _r(["discovery.k8s.io"], ["endpointslices"], READ),
    _r(["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                  "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
                  "replicasets/status", "statefulsets", "statefulsets/scale",
                  "statefulsets/status"], READ),
    _r(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
    _r(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
    _r(["extensions"], ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                        "deployments/status", "ingresses", "ingresses/status", "networkpolicies",
                        "replicasets", "replicasets/scale", "replicasets/status",
                        "replicationcontrollers/scale"], READ),
    _r(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
    _r(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], READ),
]


def _role(name, rules=None, labels=None, aggregate_label=None) -> dict:
    meta = {"name": name, "labels": dict(LABELS, **(labels or {})),
            "annotations": dict(ANNOTATIONS)}
    obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta}
    if aggregate_label:
        obj["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {aggregate_label: "true"}}]}
    obj["rules"] = rules or []
    return obj


AGG = "rbac.authorization.k8s.io/aggregate-to-"


def cluster_roles() -> list[dict]:
    view = AGGREGATE_TO_VIEW
    edit = AGGREGATE_TO_EDIT + view
    admin = AGGREGATE_TO_ADMIN + edit
    return [
        _role("cluster-admin", [_r(["*"], ["*"], ["*"]), _u(["*"], ["*"])]),
        _role("admin", admin, aggregate_label=AGG + "admin"),
        _role("edit", edit, {AGG + "admin": "true"}, aggregate_label=AGG + "edit"),
        _role("view", view, {AGG + "edit": "true"}, aggregate_label=AGG + "view"),
        _role("system:aggregate-to-admin", AGGREGATE_TO_ADMIN, {AGG + "admin": "true"}),
        _role("system:aggregate-to-edit", AGGREGATE_TO_EDIT, {AGG + "edit": "true"}),
        _role("system:aggregate-to-view", AGGREGATE_TO_VIEW, {AGG + "view": "true"}),
        _role("system:auth-delegator", [
            _r(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
            _r(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"])]),
        _role("system:basic-user", [
            _r(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
               ["create"]),
            _r(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])]),
        _role("system:discovery", [_u(["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                       "/openapi", "/openapi/*", "/readyz", "/version",
                                       "/version/"], ["get"])]),
        _role("system:monitoring", [_u(["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics",
                                        "/metrics/slis", "/readyz", "/readyz/*"], ["get"])]),
        _role("system:public-info-viewer", [_u(["/healthz", "/livez", "/readyz", "/version",
                                                "/version/"], ["get"])]),
        _role("system:service-account-issuer-discovery", [
            _u(["/.well-known/openid-configuration", "/openid/v1/jwks"], ["get"])]),
    ]


def _binding(name, role, subjects) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": dict(LABELS), "annotations": dict(ANNOTATIONS)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": s}
                         for s in subjects]}


def cluster_role_bindings() -> list[dict]:
    return [
        _binding("cluster-admin", "cluster-admin", ["system:masters"]),
        _binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
        _binding("system:discovery", "system:discovery", ["system:authenticated"]),
        _binding("system:monitoring", "system:monitoring", ["system:monitoring"]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 ["system:authenticated", "system:unauthenticated"]),
        _binding("system:service-account-issuer-discovery",
                 "system:service-account-issuer-discovery", ["system:serviceaccounts"]),
    ]


async def ensure_default_policy(rest) -> None:
    """Create the default ClusterRoles and ClusterRoleBindings that do not exist yet."""
    from shim.api.rest import WriteOptions
    for plural, objs in (("clusterroles", cluster_roles()),
                         ("clusterrolebindings", cluster_role_bindings())):
        res = rest.registry.get("rbac.authorization.k8s.io", "v1", plural)
        for obj in objs:
            if await rest.store.get(res.key(None, obj["metadata"]["name"])) is not None:
                continue
            try:
                await rest.create(res, None, obj, WriteOptions(field_validation="Ignore"))
            except errors.StatusError as e:
                if e.code != 409:
                    raise
