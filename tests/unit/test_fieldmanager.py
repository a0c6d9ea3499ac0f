"""managedFields bookkeeping and the server-side apply merge (shim/api/fieldmanager.py)."""
from __future__ import annotations

import copy
import json

import pytest

from shim.api import fieldmanager as fm
from shim.api.errors import StatusError
from shim.resources.registry import build_registry

REG = build_registry()
PODS = REG.get("", "v1", "pods")
CMS = REG.get("", "v1", "configmaps")
RCS = REG.get("", "v1", "replicationcontrollers")
SVCS = REG.get("", "v1", "services")


class Clock:
    def __init__(self, t=1_700_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def pod():
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "namespace": "d", "uid": "u1", "labels": {"run": "x"},
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "x", "image": "nginx", "resources": {},
                                     "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                     "restartPolicy": "Always"},
            "status": {"phase": "Pending"}}


def cm(data, **meta):
    m = {"name": "c", "namespace": "d"}
    m.update(meta)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data}


def entries(obj):
    return {e["manager"] + "/" + e["operation"]: e for e in obj["metadata"]["managedFields"]}


# ---- fieldsV1 encoding ------------------------------------------------------------------------

def test_fields_roundtrip_and_order():
    paths = {(("f", "spec"), ("f", "containers"), ("k", '{"name":"c"}')),
             (("f", "spec"), ("f", "containers"), ("k", '{"name":"c"}'), ("f", "image")),
             (("f", "metadata"), ("f", "labels"), ("f", "a")),
             (("f", "metadata"), ("f", "finalizers"), ("v", '"x"'))}
    out = fm.set_to_fields(paths)
    assert list(out) == ["f:metadata", "f:spec"]
    assert out["f:spec"]["f:containers"] == {'k:{"name":"c"}': {".": {}, "f:image": {}}}
    assert out["f:metadata"]["f:finalizers"] == {'v:"x"': {}}
    assert fm.fields_to_set(out) == paths


def test_fields_decode_canonicalises_keys_and_rejects_garbage():
    s = fm.fields_to_set({'k:{ "protocol": "TCP", "port": 80 }': {}})
    assert s == {(("k", '{"port":80,"protocol":"TCP"}'),)}
    for bad in ({"x:y": {}}, {"f:a": 1}, {"k:[1]": {}}, {"i:z": {}}):
        with pytest.raises(fm.DecodeError):
            fm.fields_to_set(bad)


def test_path_strings():
    p = (("f", "spec"), ("f", "ports"), ("k", '{"port":80,"protocol":"TCP"}'), ("f", "name"))
    assert fm.path_string(p) == '.spec.ports[port=80,protocol="TCP"].name'
    assert fm.path_string((("f", "a"), ("v", '"x"'), ("i", 3))) == '.a[="x"][3]'


# ---- Update entries ---------------------------------------------------------------------------

def test_create_records_update_entry_without_status_or_server_metadata():
    f = fm.FieldManager(Clock())
    p = pod()
    f.update(PODS, p, None, "kubectl-run", None)
    (e,) = p["metadata"]["managedFields"]
    assert e["manager"] == "kubectl-run" and e["operation"] == "Update"
    assert e["apiVersion"] == "v1" and e["fieldsType"] == "FieldsV1"
    assert e["time"] == "2023-11-14T22:13:20Z"
    assert "subresource" not in e
    assert e["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:run": {}}},
        "f:spec": {"f:containers": {'k:{"name":"x"}': {
            ".": {}, "f:image": {}, "f:name": {},
            "f:ports": {".": {}, 'k:{"containerPort":80,"protocol":"TCP"}': {
                ".": {}, "f:containerPort": {}, "f:protocol": {}}},
            "f:resources": {}}},
            "f:restartPolicy": {}}}


def test_update_takes_changed_fields_and_time_only_on_change():
    clock = Clock()
    f = fm.FieldManager(clock)
    old = cm({"a": "1"})
    f.update(CMS, old, None, "creator", None)
    clock.t += 60
    same = copy.deepcopy(old)
    f.update(CMS, same, old, "other", None)
    assert same["metadata"]["managedFields"] == old["metadata"]["managedFields"]
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    new["data"]["b"] = "3"
    f.update(CMS, new, old, "editor", None)
    got = entries(new)
    assert got["editor/Update"]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}
    assert got["editor/Update"]["time"] == "2023-11-14T22:14:20Z"
    # the creator lost .data.a to the editor, keeps .data itself
    assert got["creator/Update"]["fieldsV1"] == {"f:data": {}}
    assert got["creator/Update"]["time"] == "2023-11-14T22:13:20Z"
    # entries sorted by time: the older one first
    assert [e["manager"] for e in new["metadata"]["managedFields"]] == ["creator", "editor"]


def test_removed_fields_leave_every_owner():
    f = fm.FieldManager(Clock())
    old = cm({"a": "1", "b": "2"})
    f.update(CMS, old, None, "creator", None)
    new = copy.deepcopy(old)
    del new["data"]["b"]
    f.update(CMS, new, old, "remover", None)
    got = entries(new)
    assert got["creator/Update"]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    assert "remover/Update" not in got


def test_subresource_update_ignores_request_managed_fields_and_owns_status_only():
    f = fm.FieldManager(Clock())
    old = pod()
    f.update(PODS, old, None, "kubectl-run", None)
    new = copy.deepcopy(old)
    new["metadata"]["managedFields"] = []
    new["status"] = {"phase": "Running"}
    new["spec"]["restartPolicy"] = "Never"      # reset field of the status subresource
    f.update(PODS, new, old, "kubelet", "status")
    got = entries(new)
    assert got["kubelet/Update"]["subresource"] == "status"
    assert got["kubelet/Update"]["fieldsV1"] == {"f:status": {"f:phase": {}}}
    assert "f:restartPolicy" in json.dumps(got["kubectl-run/Update"]["fieldsV1"])


def test_reset_and_garbage_managed_fields():
    f = fm.FieldManager(Clock())
    old = cm({"a": "1"})
    f.update(CMS, old, None, "creator", None)
    # garbage that still decodes as JSON types: the live entries are kept
    bad = copy.deepcopy(old)
    bad["metadata"]["managedFields"] = [{"manager": "x", "operation": "Bogus",
                                         "apiVersion": "v1", "fieldsType": "FieldsV1"}]
    f.update(CMS, bad, old, "creator", None)
    assert bad["metadata"]["managedFields"] == old["metadata"]["managedFields"]
    # `[]` resets: the object is no longer tracked until the next apply
    reset = copy.deepcopy(old)
    reset["metadata"]["managedFields"] = []
    reset["data"]["a"] = "2"
    f.update(CMS, reset, old, "creator", None)
    assert "managedFields" not in reset["metadata"]
    # wrong JSON types fail decoding like the Go structs do
    wrong = copy.deepcopy(old)
    wrong["metadata"]["managedFields"] = "nope"
    with pytest.raises(StatusError) as ei:
        f.update(CMS, wrong, old, "creator", None)
    assert ei.value.code == 400
    assert ei.value.message == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
        'string into Go struct field ObjectMeta.metadata.managedFields of type '
        '[]v1.ManagedFieldsEntry')


def test_user_supplied_entries_are_kept():
    f = fm.FieldManager(Clock())
    old = cm({"a": "1"})
    f.update(CMS, old, None, "creator", None)
    new = copy.deepcopy(old)
    new["metadata"]["managedFields"] = [{"manager": "mine", "operation": "Apply",
                                         "apiVersion": "v1", "fieldsType": "FieldsV1",
                                         "fieldsV1": {"f:data": {"f:a": {}}}}]
    f.update(CMS, new, old, "patcher", None)
    (e,) = new["metadata"]["managedFields"]
    assert e["manager"] == "mine" and e["operation"] == "Apply"
    assert e["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_update_managers_are_capped_at_ten():
    clock = Clock()
    f = fm.FieldManager(clock)
    obj = cm({})
    f.update(CMS, obj, None, "m0", None)
    for i in range(1, 12):
        clock.t += 1
        new = copy.deepcopy(obj)
        new["data"][f"k{i}"] = "v"
        f.update(CMS, new, obj, f"m{i}", None)
        obj = new
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers
    assert "m11" in managers and "m1" not in managers


# ---- apply ------------------------------------------------------------------------------------

def apply(res, live, config, manager="kubectl", force=False, sub=None, now="T1"):
    return fm.plan_apply(res, live, config, manager, force, sub, now)


def test_apply_create_owns_the_configuration():
    cfg = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"a": "b"}},
           "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}
    r = apply(SVCS, None, cfg)
    assert r.changed
    (e,) = r.obj["metadata"]["managedFields"]
    assert (e["manager"], e["operation"], e["time"]) == ("kubectl", "Apply", "T1")
    assert e["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}},
                   "f:selector": {}}}


def test_apply_is_idempotent():
    live = apply(CMS, None, cm({"a": "1"}), now="T1").obj
    again = apply(CMS, live, cm({"a": "1"}), now="T2")
    assert not again.changed
    assert again.obj == live


def test_apply_conflict_message_and_force():
    f = fm.FieldManager(Clock())
    live = cm({"a": "1", "b": "2"})
    f.update(CMS, live, None, "kubectl-client-side-apply", None)
    with pytest.raises(StatusError) as ei:
        apply(CMS, live, cm({"a": "9"}), manager="me")
    e = ei.value
    assert (e.code, e.reason) == (409, "Conflict")
    assert e.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                         'using v1: .data.a')
    assert e.details == {"causes": [{"reason": "FieldManagerConflict",
                                     "message": 'conflict with "kubectl-client-side-apply" using v1',
                                     "field": ".data.a"}]}
    with pytest.raises(StatusError) as ei:
        apply(CMS, live, cm({"a": "9", "b": "8"}), manager="me")
    assert ei.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using v1:\n'
        '- .data.a\n- .data.b')
    # the same value is no conflict: shared ownership
    shared = apply(CMS, live, cm({"a": "1"}), manager="me")
    got = entries(shared.obj)
    assert "f:a" in got["me/Apply"]["fieldsV1"]["f:data"]
    assert "f:a" in got["kubectl-client-side-apply/Update"]["fieldsV1"]["f:data"]
    forced = apply(CMS, live, cm({"a": "9"}), manager="me", force=True)
    got = entries(forced.obj)
    assert forced.obj["data"] == {"a": "9", "b": "2"}
    assert got["kubectl-client-side-apply/Update"]["fieldsV1"] == {"f:data": {".": {}, "f:b": {}}}


def test_apply_conflict_with_another_applier_names_it_plainly():
    live = apply(CMS, None, cm({"a": "1"}), manager="one").obj
    with pytest.raises(StatusError) as ei:
        apply(CMS, live, cm({"a": "2"}), manager="two")
    assert ei.value.message == 'Apply failed with 1 conflict: conflict with "one": .data.a'


def test_apply_removes_fields_dropped_from_configuration():
    live = apply(CMS, None, cm({"a": "1", "b": "2"}, labels={"x": "y"})).obj
    r = apply(CMS, live, cm({"a": "1"}))
    assert r.obj["data"] == {"a": "1"}
    assert "labels" not in r.obj["metadata"]
    assert r.changed
    # a field another manager also owns stays
    live = apply(CMS, None, cm({"a": "1", "b": "2"})).obj
    live = apply(CMS, live, cm({"b": "2"}), manager="other").obj
    r = apply(CMS, live, cm({"a": "1"}))
    assert r.obj["data"] == {"a": "1", "b": "2"}


def test_apply_list_map_merge_keeps_other_items_and_prunes_own():
    base = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"},
            "spec": {"containers": [{"name": "a", "image": "i1"}, {"name": "b", "image": "i2"}]}}
    live = apply(PODS, None, base).obj
    # another manager adds a container
    f = fm.FieldManager(Clock())
    new = copy.deepcopy(live)
    new["spec"]["containers"].append({"name": "side", "image": "s"})
    f.update(PODS, new, live, "injector", None)
    cfg = copy.deepcopy(base)
    cfg["spec"]["containers"] = [{"name": "b", "image": "i3"}]
    r = apply(PODS, new, cfg)
    assert [c["name"] for c in r.obj["spec"]["containers"]] == ["b", "side"]
    assert r.obj["spec"]["containers"][0]["image"] == "i3"


def test_merge_list_order_follows_configuration_for_shared_items():
    t = fm.definition_type("io.k8s.api.core.v1.PodSpec")
    live = {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}
    out = fm.merge(live, {"containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}]}, t)
    assert [c["name"] for c in out["containers"]] == ["x", "b", "a", "c"]


def test_before_first_apply_owns_existing_fields():
    live = cm({"a": "1", "b": "2"})
    live["metadata"].update(uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    with pytest.raises(StatusError) as ei:
        apply(CMS, live, cm({"a": "3"}), manager="me")
    assert 'conflict with "before-first-apply" using v1: .data.a' in ei.value.message
    r = apply(CMS, live, cm({"a": "1"}), manager="me")
    assert set(entries(r.obj)) == {"me/Apply", "before-first-apply/Update"}


def test_kubectl_may_take_fields_its_last_applied_annotation_still_matches():
    f = fm.FieldManager(Clock())
    last = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"},
                       "metadata": {"name": "c", "namespace": "d"}})
    live = cm({"a": "1"}, annotations={fm.LAST_APPLIED: last})
    f.update(CMS, live, None, "kubectl-client-side-apply", None)
    r = apply(CMS, live, cm({"a": "2"}), manager="kubectl")
    assert r.obj["data"] == {"a": "2"}
    ann = json.loads(r.obj["metadata"]["annotations"][fm.LAST_APPLIED])
    assert ann["data"] == {"a": "2"}
    with pytest.raises(StatusError):
        apply(CMS, live, cm({"a": "2"}), manager="someone-else")


def test_apply_status_ignores_spec_and_records_subresource():
    live = apply(RCS, None, {"apiVersion": "v1", "kind": "ReplicationController",
                             "metadata": {"name": "r", "namespace": "d"},
                             "spec": {"replicas": 1}}).obj
    r = apply(RCS, live, {"apiVersion": "v1", "kind": "ReplicationController",
                          "metadata": {"name": "r", "namespace": "d"},
                          "spec": {"replicas": 5}, "status": {"replicas": 2}},
              manager="ctl", sub="status")
    e = entries(r.obj)["ctl/Apply"]
    assert e["subresource"] == "status"
    assert e["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_unknown_field_in_configuration_is_a_schema_error():
    cfg = cm({"a": "1"})
    cfg["spec"] = {"x": 1}
    with pytest.raises(fm.SchemaError) as ei:
        apply(CMS, None, cfg)
    assert str(ei.value) == ".spec: field not declared in schema"
