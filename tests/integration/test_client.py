"""shim/client.py against a real server: credentials, verbs, patch types, errors, paging,
watch with bookmarks, the reflector's resume / 410 relist, and the event recorder."""
from __future__ import annotations

import asyncio
import os

import pytest

from shim.api.errors import StatusError
from shim.client import Client, ClientConfig, load_kubeconfig, resource_path
from shim.node.events import EventRecorder, container_field_path
from tests.conftest import ServerProcess


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("client")),
                      extra_args=["--store-history", "5", "--compact-interval", "0.2"])
    s.start()
    yield s
    s.stop()


def run(server, fn):
    async def go():
        async with Client.from_kubeconfig(server.kubeconfig) as c:
            return await fn(c)
    return asyncio.run(go())


def cm(name, ns="default", **data):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data}


def test_paths():
    assert resource_path("pods", "ns", "p", "binding") == "/api/v1/namespaces/ns/pods/p/binding"
    assert resource_path("leases", "kube-node-lease", "n", group="coordination.k8s.io") == \
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n"
    assert resource_path("nodes") == "/api/v1/nodes"


def test_kubeconfig_and_explicit_credentials(srv):
    cfg = load_kubeconfig(srv.kubeconfig)
    assert cfg.server == srv.url and (cfg.cert_file or cfg.cert_data)
    pki = os.path.join(srv.data_dir, "pki")

    async def go():
        explicit = Client(srv.url, ca_file=os.path.join(pki, "ca.crt"),
                          cert_file=os.path.join(pki, "admin.crt"),
                          key_file=os.path.join(pki, "admin.key"))
        async with explicit:
            ns = await explicit.get("namespaces", "default")
        async with Client(ClientConfig(srv.url, insecure=True)) as anon:
            with pytest.raises(StatusError) as e:
                await anon.get("namespaces", "default")
        return ns, e.value
    ns, err = asyncio.run(go())
    assert ns["kind"] == "Namespace" and ns["metadata"]["name"] == "default"
    assert err.code in (401, 403)


def test_verbs_patch_types_and_errors(srv):
    async def go(c):
        created = await c.create("configmaps", cm("v1", a="1"))
        merged = await c.patch("configmaps", "v1", {"data": {"b": "2"}}, "default")
        strategic = await c.patch("configmaps", "v1", {"data": {"c": "3"}}, "default",
                                  type="strategic")
        jsonp = await c.patch("configmaps", "v1", [{"op": "remove", "path": "/data/a"}],
                              "default", type="json")
        cur = await c.get("configmaps", "v1", "default")
        cur["data"]["d"] = "4"
        updated = await c.update("configmaps", cur)
        stale = dict(cur, metadata=dict(cur["metadata"],
                                        resourceVersion=created["metadata"]["resourceVersion"]))
        with pytest.raises(StatusError) as conflict:
            await c.update("configmaps", stale)
        with pytest.raises(StatusError) as exists:
            await c.create("configmaps", cm("v1"))
        with pytest.raises(StatusError) as invalid:
            await c.create("configmaps", cm("Bad_Name"))
        deleted = await c.delete("configmaps", "v1", "default")
        with pytest.raises(StatusError) as missing:
            await c.get("configmaps", "v1", "default")
        return (created, merged, strategic, jsonp, updated, conflict.value, exists.value,
                invalid.value, deleted, missing.value)
    (created, merged, strategic, jsonp, updated, conflict, exists, invalid, deleted,
     missing) = run(srv, go)
    assert created["data"] == {"a": "1"}
    assert merged["data"] == {"a": "1", "b": "2"}
    assert strategic["data"] == {"a": "1", "b": "2", "c": "3"}
    assert jsonp["data"] == {"b": "2", "c": "3"}
    assert updated["data"] == {"b": "2", "c": "3", "d": "4"}
    assert (conflict.code, conflict.reason) == (409, "Conflict")
    assert (exists.code, exists.reason) == (409, "AlreadyExists")
    assert exists.message == 'configmaps "v1" already exists'
    assert (invalid.code, invalid.reason) == (422, "Invalid")
    assert deleted["status"] == "Success"
    assert (missing.code, missing.message) == (404, 'configmaps "v1" not found')


def test_list_follows_continue_and_selectors(srv):
    async def go(c):
        for i in range(7):
            o = cm(f"page-{i}")
            o["metadata"]["labels"] = {"pager": "yes", "odd": str(i % 2)}
            await c.create("configmaps", o)
        everything = await c.list("configmaps", "default", label_selector="pager=yes", limit=2)
        odd = await c.list("configmaps", "default", label_selector="pager=yes,odd=1")
        named = await c.list("configmaps", "default", field_selector="metadata.name=page-3")
        return everything, odd, named
    everything, odd, named = run(srv, go)
    assert sorted(i["metadata"]["name"] for i in everything["items"]) == \
        [f"page-{i}" for i in range(7)]
    assert everything["metadata"]["resourceVersion"]
    assert len(odd["items"]) == 3
    assert [i["metadata"]["name"] for i in named["items"]] == ["page-3"]


def test_raw_watch_and_expired(srv):
    async def go(c):
        start = (await c.list("secrets", "default"))["metadata"]["resourceVersion"]
        seen = []

        async def watch():
            async for ev in c.watch("secrets", "default", resource_version=start):
                seen.append((ev.type, ev.object["metadata"]["name"]))
                if len(seen) == 3:
                    return
        t = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        await c.create("secrets", {"metadata": {"name": "w1"}, "stringData": {"k": "v"}},
                       "default")
        await c.patch("secrets", "w1", {"metadata": {"labels": {"x": "y"}}}, "default")
        await c.delete("secrets", "w1", "default")
        await asyncio.wait_for(t, 10)
        # churn past the kept history, then watch from the old revision: 410 Expired
        for i in range(12):
            await c.create("configmaps", cm(f"churn-{i}"))
        await asyncio.sleep(0.6)
        with pytest.raises(StatusError) as expired:
            async for _ in c.watch("secrets", "default", resource_version=start):
                pass
        return seen, expired.value
    seen, expired = run(srv, go)
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    assert expired.code == 410 and expired.reason == "Expired"


def test_reflector_resumes_and_relists_after_410(srv):
    async def go(c):
        await c.create("configmaps", cm("keep", ns="kube-public"))
        await c.create("configmaps", cm("doomed", ns="kube-public"))
        r = c.reflector("configmaps", "kube-public")
        first = []

        async def initial():
            async for ev in r:
                first.append((ev.type, ev.object["metadata"]["name"]))
                if len(first) == 3:          # the initial list: kube-root-ca.crt, keep, doomed
                    return
        await asyncio.wait_for(initial(), 10)
        # while nobody watches: one object goes, one comes, history is compacted away
        await c.delete("configmaps", "doomed", "kube-public")
        await c.create("configmaps", cm("newcomer", ns="kube-public"))
        for i in range(12):
            await c.create("configmaps", cm(f"churn2-{i}"))
        await asyncio.sleep(0.6)
        relists_before = r.relists
        after = []

        async def resume():
            async for ev in r:
                after.append((ev.type, ev.object["metadata"]["name"]))
                if len(after) == 2:
                    return
        await asyncio.wait_for(resume(), 10)
        return first, after, r.relists - relists_before, sorted(r.cache)
    first, after, relists, cache = run(srv, go)
    assert sorted(first) == [("ADDED", "doomed"), ("ADDED", "keep"), ("ADDED", "kube-root-ca.crt")]
    assert sorted(after) == [("ADDED", "newcomer"), ("DELETED", "doomed")]
    assert relists == 1
    assert cache == ["kube-public/keep", "kube-public/kube-root-ca.crt", "kube-public/newcomer"]


def test_event_recorder_creates_then_aggregates(srv):
    async def go(c):
        pod = await c.create("pods", {"metadata": {"name": "evp"}, "spec": {
            "containers": [{"name": "app", "image": "busybox"}]}}, "default")
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "evnode", "uid": "u"}}
        t = [1_700_000_000.0]
        rec = EventRecorder(c, "kubelet", "evnode", clock=lambda: t[0])
        fp = container_field_path(pod, "app")
        e1 = await rec.record(pod, "Normal", "Pulling", 'Pulling image "busybox"', field_path=fp)
        t[0] += 30
        e2 = await rec.record(pod, "Normal", "Pulling", 'Pulling image "busybox"', field_path=fp)
        e3 = await rec.record(pod, "Warning", "BackOff", "Back-off restarting failed container")
        n1 = await rec.record(node, "Normal", "NodeReady", "Node evnode status is now: NodeReady")
        listed = await c.list("events", "default", field_selector="involvedObject.name=evp,source=kubelet")
        return pod, e1, e2, e3, n1, listed
    pod, e1, e2, e3, n1, listed = run(srv, go)
    assert e1["metadata"]["name"] == f"evp.{int(1_700_000_000 * 1e9):x}"
    assert e1["involvedObject"] == {
        "kind": "Pod", "namespace": "default", "name": "evp", "uid": pod["metadata"]["uid"],
        "apiVersion": "v1", "resourceVersion": pod["metadata"]["resourceVersion"],
        "fieldPath": "spec.containers{app}"}
    assert e1["source"] == {"component": "kubelet", "host": "evnode"}
    assert (e1["reportingComponent"], e1["reportingInstance"]) == ("kubelet", "evnode")
    assert e1["count"] == 1 and e1["firstTimestamp"] == e1["lastTimestamp"] == \
        "2023-11-14T22:13:20Z"
    assert e2["metadata"]["name"] == e1["metadata"]["name"] and e2["count"] == 2
    assert e2["firstTimestamp"] == "2023-11-14T22:13:20Z"
    assert e2["lastTimestamp"] == "2023-11-14T22:13:50Z"
    assert e3["metadata"]["name"] != e1["metadata"]["name"] and e3["type"] == "Warning"
    assert n1["metadata"]["namespace"] == "default" and "namespace" not in n1["involvedObject"]
    assert len(listed["items"]) == 2
