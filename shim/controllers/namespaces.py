"""Namespace controllers: every namespace has a `default` ServiceAccount and the
`kube-root-ca.crt` ConfigMap (recreated when deleted), and a deleted namespace is emptied
and finalized (kube-controller-manager's serviceaccounts, root-ca-cert-publisher and
namespace controllers; pkg/controller/namespace/deletion).

Deletion: every namespaced resource the server lists in discovery is deleted
(deletecollection, pods gracefully with their own grace periods), the remaining content is
counted into the NamespaceDeletion* / NamespaceContentRemaining / NamespaceFinalizersRemaining
status conditions worded like the real controller's, and once nothing is left the
`kubernetes` finalizer is removed through namespaces/finalize, which removes the namespace.

`NamespaceController` is an API client (runs under kopf with the other controllers);
`ensure_namespace_defaults` is the in-process variant bootstrap uses before serving.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from shim.api import errors
from shim.api.rest import REST, WriteOptions
from shim.controllers.runtime import Api, ApiError, Informers, WorkQueue

log = logging.getLogger("shim.controllers.namespaces")

SA_NAME = "default"
ROOT_CA = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")

CONDITION_TYPES = ("NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
                   "NamespaceDeletionContentFailure", "NamespaceContentRemaining",
                   "NamespaceFinalizersRemaining")
OK_CONDITIONS = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions",
                                                    "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentRemoved", "All content successfully removed"),
}


def service_account(ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": SA_NAME, "namespace": ns}}


def root_ca_configmap(ns: str, ca: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA, "namespace": ns,
                         "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
            "data": {"ca.crt": ca}}


# ---- in-process variant (bootstrap, before the API is served) ----------------------------

async def _ensure(rest: REST, plural: str, ns: str, obj: dict) -> None:
    res = rest.registry.get("", "v1", plural)
    if await rest.store.get(res.key(ns, obj["metadata"]["name"])) is not None:
        return
    try:
        await rest.create(res, ns, obj, WriteOptions(field_validation="Ignore"))
    except errors.StatusError as e:
        if e.code not in (403, 404, 409):   # namespace going away or already there
            raise


async def ensure_namespace_defaults(rest: REST, ns: str) -> None:
    await _ensure(rest, "serviceaccounts", ns, service_account(ns))
    await _ensure(rest, "configmaps", ns, root_ca_configmap(ns, rest.extras.get("ca_pem", "")))


# ---- conditions -------------------------------------------------------------------------

def content_conditions(remaining: dict[str, int], finalizers: dict[str, int],
                       failures: list[str]) -> list[dict]:
    """The failing conditions for one deletion pass (types absent here are 'ok')."""
    out = []
    if failures:
        out.append({"type": "NamespaceDeletionContentFailure", "status": "True",
                    "reason": "ContentDeletionFailed",
                    "message": f"Failed to delete all resource types, {len(failures)} remaining: "
                               + ", ".join(sorted(failures))})
    left = sorted(f"{plural}. has {n} resource instances" for plural, n in remaining.items() if n)
    if left:
        out.append({"type": "NamespaceContentRemaining", "status": "True",
                    "reason": "SomeResourcesRemain",
                    "message": "Some resources are remaining: " + ", ".join(left)})
    fins = sorted(f"{f} in {n} resource instances" for f, n in finalizers.items() if n)
    if fins:
        out.append({"type": "NamespaceFinalizersRemaining", "status": "True",
                    "reason": "SomeFinalizerRemain",
                    "message": "Some finalizers are remaining: " + ", ".join(fins)})
    return out


def merge_conditions(current: list[dict], failing: list[dict], now: str) -> tuple[list[dict], bool]:
    """Every controller-owned condition type set to its failing or 'ok' variant
    (status_condition_utils.updateConditions); returns (conditions, changed)."""
    conds = [dict(c) for c in current or []]
    changed = False
    for ctype in CONDITION_TYPES:
        new = next((c for c in failing if c["type"] == ctype), None)
        if new is None:
            reason, message = OK_CONDITIONS[ctype]
            new = {"type": ctype, "status": "False", "reason": reason, "message": message}
        old = next((c for c in conds if c.get("type") == ctype), None)
        if old is None:
            conds.append({"type": ctype, "status": new["status"], "lastTransitionTime": now,
                          "reason": new["reason"], "message": new["message"]})
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != \
                (new["status"], new["reason"], new["message"]):
            if old.get("status") != new["status"]:
                old["lastTransitionTime"] = now
            old.update(status=new["status"], reason=new["reason"], message=new["message"])
            changed = True
    return conds, changed


# ---- the controller ---------------------------------------------------------------------

class NamespaceController:
    def __init__(self, api: Api, informers: Informers, ca: str, *, workers: int = 5,
                 clock: Callable[[], float] = time.time):
        self.api = api
        self.informers = informers
        self.ca = ca
        self.clock = clock
        self.terminating: set[str] = set()
        self._resources: list[tuple[str, tuple[str, ...]]] | None = None
        self.queue = WorkQueue("namespace", self.sync, workers, ready=informers.synced)
        informers.listen(self.on_change)

    async def run(self) -> None:
        await self.queue.run()

    def on_change(self, plural: str, etype: str, obj: dict, old: dict | None) -> None:
        m = obj.get("metadata") or {}
        if plural == "namespaces":
            if etype == "DELETED":
                self.terminating.discard(m["name"])
            elif m.get("deletionTimestamp"):
                self.terminating.add(m["name"])
                self.queue.add(("delete", m["name"]))
            else:
                self.queue.add(("defaults", m["name"]))
            return
        ns = m.get("namespace")
        if etype != "DELETED" or not ns:
            return
        if ns in self.terminating:
            self.queue.add(("delete", ns))
        elif (plural, m.get("name")) in (("serviceaccounts", SA_NAME), ("configmaps", ROOT_CA)):
            self.queue.add(("defaults", ns))

    async def sync(self, key) -> None:
        action, name = key
        if action == "delete":
            await self.delete_namespace(name)
        else:
            await self.ensure_defaults(name)

    # ---- per-namespace defaults ----
    async def ensure_defaults(self, ns: str) -> None:
        nsobj = self.informers.caches["namespaces"].get(None, ns)
        if nsobj is None or (nsobj.get("metadata") or {}).get("deletionTimestamp"):
            return
        if self.informers.caches["serviceaccounts"].get(ns, SA_NAME) is None:
            await self._create("serviceaccounts", ns, service_account(ns))
        cm = self.informers.caches["configmaps"].get(ns, ROOT_CA)
        if cm is None:
            await self._create("configmaps", ns, root_ca_configmap(ns, self.ca))
        elif (cm.get("data") or {}).get("ca.crt") != self.ca and self.ca:
            new = dict(cm)
            new["data"] = {"ca.crt": self.ca}
            try:
                self.informers.written("configmaps",
                                       await self.api.replace("configmaps", ns, ROOT_CA, new))
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

    async def _create(self, plural: str, ns: str, obj: dict) -> None:
        try:
            self.informers.written(plural, await self.api.create(plural, ns, obj))
        except ApiError as e:
            if e.code not in (403, 404, 409):   # namespace going away, or already there
                raise

    # ---- deletion ----
    async def discover(self) -> list[tuple[str, tuple[str, ...]]]:
        """Namespaced resources that can be listed and deleted (from /api/v1 discovery)."""
        if self._resources is None:
            doc = await self.api.request("GET", "/api/v1")
            self._resources = [
                (r["name"], tuple(r.get("verbs") or ())) for r in doc.get("resources") or []
                if r.get("namespaced") and "/" not in r["name"]
                and {"list", "delete"} <= set(r.get("verbs") or ())]
        return self._resources

    async def delete_namespace(self, name: str) -> None:
        try:
            ns = await self.api.get("namespaces", None, name)
        except ApiError as e:
            if e.code == 404:
                return
            raise
        if not (ns.get("metadata") or {}).get("deletionTimestamp"):
            return
        if "kubernetes" not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        remaining, finalizers, failures = await self.delete_content(name)
        ns = await self._update_conditions(ns, content_conditions(remaining, finalizers, failures))
        if ns is None:
            return
        if sum(remaining.values()) or failures:
            self.queue.add_after(("delete", name), 1.0)
            return
        await self.finalize(ns)

    async def delete_content(self, ns: str) -> tuple[dict[str, int], dict[str, int], list[str]]:
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        failures: list[str] = []
        for plural, verbs in await self.discover():
            try:
                if "deletecollection" in verbs:
                    await self.api.delete_collection(plural, ns)
                else:
                    await self._delete_each(plural, ns)
                items = (await self.api.list(plural, ns)).get("items") or []
            except ApiError as e:
                failures.append(f'{plural}: {e.message}')
                continue
            if items:
                remaining[plural] = len(items)
            for it in items:
                for f in (it.get("metadata") or {}).get("finalizers") or []:
                    finalizers[f] = finalizers.get(f, 0) + 1
        return remaining, finalizers, failures

    async def _delete_each(self, plural: str, ns: str) -> None:
        for it in (await self.api.list(plural, ns)).get("items") or []:
            m = it.get("metadata") or {}
            if m.get("deletionTimestamp"):
                continue
            try:
                await self.api.delete(plural, ns, m["name"])
            except ApiError as e:
                if e.code != 404:
                    raise

    async def _update_conditions(self, ns: dict, failing: list[dict]) -> dict | None:
        from shim.api.rest import now_rfc3339
        status = dict(ns.get("status") or {})
        conds, changed = merge_conditions(status.get("conditions") or [], failing,
                                          now_rfc3339(self.clock()))
        if not changed:
            return ns
        status["conditions"] = conds
        new = dict(ns)
        new["status"] = status
        try:
            return await self.api.replace("namespaces", None, ns["metadata"]["name"], new,
                                          sub="status")
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    async def finalize(self, ns: dict) -> None:
        spec = dict(ns.get("spec") or {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
        body = dict(ns)
        body["spec"] = spec
        try:
            await self.api.replace("namespaces", None, ns["metadata"]["name"], body, sub="finalize")
        except ApiError as e:
            if e.code != 404:
                raise

