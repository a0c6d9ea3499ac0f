"""The official Python client against kubeshim: CRUD, watch, resumed watch, conflicts, informers."""
from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException


NS = "default"


def pod(name, labels=None):
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": "x"}),
                        spec=client.V1PodSpec(containers=[client.V1Container(name="c",
                                                                               image="busybox")]))


# (kind, create, read, list, patch, replace, delete, body factory)
def _kinds(core):
    return {
        "pod": ("namespaced_pod", pod),
        "replication_controller": ("namespaced_replication_controller", lambda n: client.V1ReplicationController(
            metadata=client.V1ObjectMeta(name=n), spec=client.V1ReplicationControllerSpec(
                replicas=1, template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"rc": n}),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]))))),
        "service": ("namespaced_service", lambda n: client.V1Service(
            metadata=client.V1ObjectMeta(name=n), spec=client.V1ServiceSpec(
                selector={"app": "x"}, ports=[client.V1ServicePort(port=80)]))),
        "endpoints": ("namespaced_endpoints", lambda n: client.V1Endpoints(
            metadata=client.V1ObjectMeta(name=n), subsets=[client.V1EndpointSubset(
                addresses=[client.V1EndpointAddress(ip="10.42.0.9")],
                ports=[client.CoreV1EndpointPort(port=80)])])),
        "secret": ("namespaced_secret", lambda n: client.V1Secret(
            metadata=client.V1ObjectMeta(name=n), string_data={"k": "v"})),
        "resource_quota": ("namespaced_resource_quota", lambda n: client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name=n), spec=client.V1ResourceQuotaSpec(hard={"pods": "4"}))),
        "config_map": ("namespaced_config_map", lambda n: client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=n), data={"a": "b"})),
        "service_account": ("namespaced_service_account", lambda n: client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name=n))),
        "event": ("namespaced_event", lambda n: client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=n), involved_object=client.V1ObjectReference(
                kind="Pod", name="x", namespace=NS), reason="R", message="m")),
    }


@pytest.mark.parametrize("kind", ["pod", "replication_controller", "service", "endpoints", "secret",
                                  "resource_quota", "config_map", "service_account", "event"])
def test_crud_every_namespaced_kind(core, ns, kind):
    global NS
    NS = ns
    suffix, make = _kinds(core)[kind]
    name = f"py-{kind.replace('_', '-')}"
    created = getattr(core, f"create_{suffix}")(ns, make(name))
    assert created.metadata.uid and created.metadata.resource_version
    got = getattr(core, f"read_{suffix}")(name, ns)
    assert got.metadata.uid == created.metadata.uid
    lst = getattr(core, f"list_{suffix}")(ns)
    assert name in [i.metadata.name for i in lst.items] and lst.metadata.resource_version
    patched = getattr(core, f"patch_{suffix}")(name, ns, {"metadata": {"labels": {"p": "1"}}})
    assert patched.metadata.labels["p"] == "1"
    for _ in range(10):   # controllers (RC status) may write in between: re-read on 409
        patched.metadata.annotations = {"r": "1"}
        try:
            replaced = getattr(core, f"replace_{suffix}")(name, ns, patched)
            break
        except ApiException as e:
            assert e.status == 409
            patched = getattr(core, f"read_{suffix}")(name, ns)
    assert replaced.metadata.annotations == {"r": "1"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    # a replace based on a stale resourceVersion is refused with 409
    stale = got
    stale.metadata.labels = {"stale": "yes"}
    with pytest.raises(ApiException) as ei:
        getattr(core, f"replace_{suffix}")(name, ns, stale)
    assert ei.value.status == 409
    assert "the object has been modified" in ei.value.body
    getattr(core, f"delete_{suffix}")(name, ns)
    with pytest.raises(ApiException) as ei:
        getattr(core, f"read_{suffix}")(name, ns)
    assert ei.value.status == 404


def test_cluster_scoped_namespace_and_node(core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-ns")))
    n = core.read_namespace("py-ns")
    assert n.status.phase == "Active" and n.spec.finalizers == ["kubernetes"]
    assert n.metadata.labels["kubernetes.io/metadata.name"] == "py-ns"
    node = client.V1Node(metadata=client.V1ObjectMeta(name="py-node", labels={"x": "y"}))
    core.create_node(node)
    assert core.read_node("py-node").metadata.labels["x"] == "y"
    core.patch_node("py-node", {"spec": {"unschedulable": True}})
    nodes = core.list_node(field_selector="spec.unschedulable=true")
    assert [i.metadata.name for i in nodes.items] == ["py-node"]
    core.delete_node("py-node")
    core.delete_namespace("py-ns")
    deadline = time.monotonic() + 10
    while True:
        try:
            core.read_namespace("py-ns")
        except ApiException as e:
            assert e.status == 404
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_watch_stream_and_resume_from_list_rv(core, ns):
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w0")))
    lst = core.list_namespaced_config_map(ns)
    rv = lst.metadata.resource_version
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
    core.patch_namespaced_config_map("w1", ns, {"data": {"a": "b"}})
    core.delete_namespaced_config_map("w1", ns)
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    # no resourceVersion: synthetic ADDED for what exists first
    w = watch.Watch()
    first = []
    for ev in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=5):
        first.append((ev["type"], ev["object"].metadata.name))
        if ("ADDED", "w0") in first:
            w.stop()
    assert ("ADDED", "w0") in first


def test_label_selector_watch_sends_deleted_when_object_stops_matching(core, ns):
    core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="sel", labels={"watched": "yes"})))
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("sel", ns, {"metadata": {"labels": {"watched": "no"}}})
    core.patch_namespaced_config_map("sel", ns, {"metadata": {"labels": {"watched": "yes"}}})
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="watched=yes",
                       resource_version=rv, timeout_seconds=5):
        seen.append(ev["type"])
        if len(seen) == 2:
            w.stop()
    assert seen == ["DELETED", "ADDED"]


def test_shared_informer_sees_adds_updates_deletes(api_client, core, ns):
    from kubernetes.informer import informer as inf
    if not hasattr(inf, "SharedInformer"):
        raise AssertionError("kubernetes.informer.SharedInformer missing from the client")
    events = []
    lock = threading.Event()
    si = inf.SharedInformer(list_func=core.list_namespaced_secret, namespace=ns, resync_period=0)
    handlers = {"ADDED": lambda o: events.append(("ADDED", o.metadata.name)),
                "MODIFIED": lambda o: events.append(("MODIFIED", o.metadata.name)),
                "DELETED": lambda o: events.append(("DELETED", o.metadata.name))}
    _add_handlers(si, handlers)
    si.start()
    try:
        time.sleep(0.5)
        core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="inf1"),
                                                          string_data={"a": "b"}))
        core.patch_namespaced_secret("inf1", ns, {"metadata": {"labels": {"x": "1"}}})
        core.delete_namespaced_secret("inf1", ns)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ("DELETED", "inf1") not in events:
            time.sleep(0.05)
    finally:
        si.stop()
    del lock
    mine = [e for e in events if e[1] == "inf1"]
    assert mine == [("ADDED", "inf1"), ("MODIFIED", "inf1"), ("DELETED", "inf1")]


def _add_handlers(si, handlers):
    import inspect
    add = getattr(si, "add_event_handler")
    params = list(inspect.signature(add).parameters)
    for etype, fn in handlers.items():
        if len(params) >= 2:
            add(etype, fn)
        else:
            add(fn)


def test_list_pagination_and_table(core, ns):
    for i in range(7):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"pg{i}")))
    names, token = [], None
    while True:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert len(page.items) == 3
    assert sorted(n for n in names if n.startswith("pg")) == [f"pg{i}" for i in range(7)]


def test_dry_run_stores_nothing(core, ns):
    p = core.create_namespaced_pod(ns, pod("dry"), dry_run="All")
    assert p.spec.restart_policy == "Always" and p.spec.containers[0].image_pull_policy == "Always"
    with pytest.raises(ApiException) as ei:
        core.read_namespaced_pod("dry", ns)
    assert ei.value.status == 404


def test_deletecollection(core, ns, raw):
    for i in range(3):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"dc{i}", labels={"dc": "1"})))
    core.delete_collection_namespaced_config_map(ns, label_selector="dc=1")
    assert [i for i in core.list_namespaced_config_map(ns, label_selector="dc=1").items] == []
    code, status, _, _ = raw("DELETE", "/api/v1/namespaces")
    assert code == 405 and status["reason"] == "MethodNotAllowed"
    assert status["message"] == 'deletecollection is not supported on resources of kind "namespaces"'
