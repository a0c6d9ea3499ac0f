"""Service: defaults, ClusterIP and NodePort allocation (never reused while held), validation,
status subresource; delete returns the object."""
from __future__ import annotations

from shim.api import errors
from shim.resources import defaults, validation
from shim.resources.base import Resource, Subresource

_NODEPORT_TYPES = ("NodePort", "LoadBalancer")


class Services(Resource):
    kind, plural, singular = "Service", "services", "service"
    short_names, categories = ("svc",), ("all",)
    has_status = True
    delete_returns_object = True
    allow_create_on_update = True
    name_validator = staticmethod(validation.name_is_dns1035_label)
    selectable = ("spec.clusterIP", "spec.type")
    subresources = (
        Subresource("proxy", "ServiceProxyOptions", ("create", "delete", "get", "patch", "update")),
        Subresource("status", "Service", ("get", "patch", "update")),
    )

    def prepare_for_create(self, obj, ctx):
        obj.pop("status", None)
        defaults.service(obj)
        obj["status"] = {"loadBalancer": {}}

    def default(self, obj):
        defaults.service(obj)

    def validate(self, obj):
        return validation.service(obj)

    def validate_update(self, new, old):
        return validation.service_update(new, old)

    def prepare_for_update(self, new, old):
        spec, ospec = new.setdefault("spec", {}), old.get("spec", {})
        # clusterIP is kept when the update leaves it out (as the real server's PatchAllocatedValues)
        if spec.get("type", "ClusterIP") != "ExternalName" and ospec.get("type") != "ExternalName":
            if not spec.get("clusterIP") and ospec.get("clusterIP"):
                spec["clusterIP"] = ospec["clusterIP"]
            if not spec.get("clusterIPs") and ospec.get("clusterIPs"):
                spec["clusterIPs"] = ospec["clusterIPs"]
            for k in ("ipFamilies", "ipFamilyPolicy"):
                if k not in spec and k in ospec:
                    spec[k] = ospec[k]
        if spec.get("type") in _NODEPORT_TYPES:
            oldports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                        for p in ospec.get("ports") or []}
            for p in spec.get("ports") or []:
                if not p.get("nodePort"):
                    np = oldports.get((p.get("port"), p.get("protocol", "TCP")))
                    if np:
                        p["nodePort"] = np
        super().prepare_for_update(new, old)

    # ---- allocation ----
    def _allocators(self, ctx):
        return ctx.rest.extras["service_ips"], ctx.rest.extras["node_ports"]

    async def before_create(self, obj, ctx, dry_run=False):
        self._allocate(obj, None, ctx, dry_run)

    async def before_update(self, new, old, ctx):
        self._allocate(new, old, ctx, False)

    def _allocate(self, obj, old, ctx, dry_run):
        ips, ports = self._allocators(ctx)
        spec = obj.setdefault("spec", {})
        stype = spec.get("type", "ClusterIP")
        taken_ip = None
        taken_ports: list[int] = []
        ospec = (old or {}).get("spec", {})
        try:
            if stype == "ExternalName":
                for k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    spec.pop(k, None)
            else:
                want = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
                if want == "None":
                    spec["clusterIP"] = "None"
                    spec["clusterIPs"] = ["None"]
                elif not old or want != ospec.get("clusterIP"):
                    try:
                        ip = ips.allocate(want or None) if not dry_run or not want else want
                        if dry_run and not want:
                            ips.release(ip)
                    except ValueError as e:
                        raise errors.invalid("Service", obj["metadata"].get("name", ""), [
                            errors.invalid_value("spec.clusterIPs", [want],
                                                 f"failed to allocate IP {want}: {e}")]) from None
                    except RuntimeError:
                        raise errors.internal("failed to allocate a serviceIP: range is full") from None
                    if not dry_run:
                        taken_ip = ip
                    spec["clusterIP"] = ip
                    spec["clusterIPs"] = [ip]
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            oldports = {p.get("nodePort") for p in ospec.get("ports") or []
                        if ospec.get("type") in _NODEPORT_TYPES}
            if stype in _NODEPORT_TYPES:
                for i, p in enumerate(spec.get("ports") or []):
                    np = p.get("nodePort")
                    if np and np in oldports:
                        continue
                    try:
                        got = ports.allocate(np or None)
                    except ValueError as e:
                        raise errors.invalid("Service", obj["metadata"].get("name", ""), [
                            errors.invalid_value(f"spec.ports[{i}].nodePort", np, str(e))]) from None
                    if dry_run:
                        ports.release(got)
                    else:
                        taken_ports.append(got)
                    p["nodePort"] = got
            else:
                for p in spec.get("ports") or []:
                    p.pop("nodePort", None)
        except BaseException:
            ips.release(taken_ip)
            for p in taken_ports:
                ports.release(p)
            raise
        if old and not dry_run:   # give back what the new spec no longer holds
            newip = spec.get("clusterIP")
            if ospec.get("clusterIP") not in (None, "None", newip):
                ips.release(ospec.get("clusterIP"))
            newports = {p.get("nodePort") for p in spec.get("ports") or []}
            for np in oldports - newports:
                ports.release(np)

    async def after_delete(self, obj, ctx):
        ips, ports = self._allocators(ctx)
        spec = obj.get("spec", {})
        if spec.get("clusterIP") not in (None, "None"):
            ips.release(spec["clusterIP"])
        for p in spec.get("ports") or []:
            ports.release(p.get("nodePort"))

    def validate_status_update(self, new, old):
        return validation.service_status_update(new, old)


def rebuild_allocations(entries, ips, ports) -> None:
    """Mark every stored Service's ClusterIP and NodePorts as held (start-up)."""
    for e in entries:
        spec = e.obj.get("spec", {})
        ip = spec.get("clusterIP")
        if ip and ip != "None" and ips.contains(ip):
            ips.held.add(ip)
        if spec.get("type") in _NODEPORT_TYPES:
            for p in spec.get("ports") or []:
                if p.get("nodePort"):
                    ports.held.add(p["nodePort"])
