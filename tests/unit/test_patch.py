"""Tests for shim.api.patch: JSON patch, merge patch, strategic merge patch, dispatch."""
import copy
import json

import pytest

from shim.api import patch as P
from shim.api.errors import StatusError
from shim.api.patch import (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, apply_patch,
                            json_patch, merge_patch, strategic_merge_patch)

POD = "io.k8s.api.core.v1.Pod"
SERVICE = "io.k8s.api.core.v1.Service"
GENERIC_422 = "the server rejected our request due to an error in our request"


def raises(fn, *args) -> StatusError:
    with pytest.raises(StatusError) as info:
        fn(*args)
    return info.value


def assert_422(fn, *args):
    err = raises(fn, *args)
    assert (err.code, err.reason, err.message, err.details) == (422, "Invalid", GENERIC_422, {})
    assert err.status() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": GENERIC_422, "reason": "Invalid",
                            "details": {}, "code": 422}


# ---- JSON patch -------------------------------------------------------------------------

DOC = {"metadata": {"name": "p", "resourceVersion": "7", "labels": {"app": "web"},
                    "annotations": {"example.com/x": "1", "a~b": "2"}},
       "spec": {"list": [1, 2, 3]}}


def test_add_member_and_overwrite_existing():
    out = json_patch(DOC, [{"op": "add", "path": "/metadata/labels/tier", "value": "fe"},
                           {"op": "add", "path": "/metadata/labels/app", "value": "api"}])
    assert out["metadata"]["labels"] == {"app": "api", "tier": "fe"}


def test_add_array_positions():
    out = json_patch(DOC, [{"op": "add", "path": "/spec/list/0", "value": 0},
                           {"op": "add", "path": "/spec/list/-", "value": 9},
                           {"op": "add", "path": "/spec/list/5", "value": 10}])
    assert out["spec"]["list"] == [0, 1, 2, 3, 9, 10]


def test_add_negative_index_counts_from_end_of_grown_list():
    out = json_patch(DOC, [{"op": "add", "path": "/spec/list/-1", "value": 4}])
    assert out["spec"]["list"] == [1, 2, 3, 4]


@pytest.mark.parametrize("path", ["/spec/list/4", "/spec/list/x", "/spec/list/-5",
                                  "/nope/a", "/metadata/name/x", ""])
def test_add_bad_target_is_422(path):
    assert_422(json_patch, DOC, [{"op": "add", "path": path, "value": 1}])


def test_pointer_escapes():
    out = json_patch(DOC, [{"op": "replace", "path": "/metadata/annotations/example.com~1x",
                            "value": "2"},
                           {"op": "remove", "path": "/metadata/annotations/a~0b"}])
    assert out["metadata"]["annotations"] == {"example.com/x": "2"}


def test_remove_member_and_element():
    out = json_patch(DOC, [{"op": "remove", "path": "/metadata/labels"},
                           {"op": "remove", "path": "/spec/list/1"}])
    assert "labels" not in out["metadata"] and out["spec"]["list"] == [1, 3]


@pytest.mark.parametrize("path", ["/metadata/missing", "/spec/list/3", "/spec/list/-"])
def test_remove_missing_is_422(path):
    assert_422(json_patch, DOC, [{"op": "remove", "path": path}])


def test_replace_existing_and_missing_member_acts_as_add():
    out = json_patch(DOC, [{"op": "replace", "path": "/spec/list/-1", "value": 30},
                           {"op": "replace", "path": "/metadata/newKey", "value": "v"}])
    assert out["spec"]["list"] == [1, 2, 30] and out["metadata"]["newKey"] == "v"


def test_replace_out_of_range_is_422():
    assert_422(json_patch, DOC, [{"op": "replace", "path": "/spec/list/3", "value": 1}])


def test_replace_root():
    assert json_patch(DOC, [{"op": "replace", "path": "", "value": {"a": 1}}]) == {"a": 1}
    assert_422(json_patch, DOC, [{"op": "replace", "path": "", "value": "x"}])


def test_move_and_copy():
    out = json_patch(DOC, [{"op": "move", "from": "/metadata/labels/app", "path": "/spec/app"},
                           {"op": "copy", "from": "/spec/list", "path": "/spec/copy"},
                           {"op": "move", "from": "/spec/list/0", "path": "/spec/list/-"}])
    assert out["spec"] == {"list": [2, 3, 1], "app": "web", "copy": [1, 2, 3]}
    assert out["metadata"]["labels"] == {}


def test_copy_is_deep_and_copy_of_missing_member_yields_null():
    out = json_patch(DOC, [{"op": "copy", "from": "/metadata/labels", "path": "/spec/l"},
                           {"op": "add", "path": "/spec/l/x", "value": "y"},
                           {"op": "copy", "from": "/metadata/absent", "path": "/spec/n"}])
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["spec"]["l"] == {"app": "web", "x": "y"} and out["spec"]["n"] is None


@pytest.mark.parametrize("op", [{"op": "move", "from": "/metadata/absent", "path": "/a"},
                                {"op": "move", "path": "/a"},
                                {"op": "copy", "from": "/spec/list/9", "path": "/a"}])
def test_move_copy_errors_are_422(op):
    assert_422(json_patch, DOC, [op])


def test_test_op_passes_then_applies():
    out = json_patch(DOC, [{"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                           {"op": "add", "path": "/metadata/finalizers", "value": ["kopf"]}])
    assert out["metadata"]["finalizers"] == ["kopf"]


@pytest.mark.parametrize("value", ["8", 7, None])
def test_failed_test_is_422_and_nothing_applies(value):
    assert_422(json_patch, DOC, [{"op": "test", "path": "/metadata/resourceVersion",
                                  "value": value}])


def test_test_structural_and_missing_member_semantics():
    ops = [{"op": "test", "path": "/metadata/labels", "value": {"app": "web"}},
           {"op": "test", "path": "/spec/list", "value": [1, 2, 3]},
           {"op": "test", "path": "/metadata/absent", "value": None},
           {"op": "test", "path": "/metadata/absent"}]
    assert json_patch(DOC, ops) == DOC
    assert_422(json_patch, DOC, [{"op": "test", "path": "/spec/list", "value": [1, 2]}])
    assert_422(json_patch, DOC, [{"op": "test", "path": "/spec/list/0", "value": 1.5}])
    assert_422(json_patch, DOC, [{"op": "test", "path": "/spec/list/0", "value": True}])


@pytest.mark.parametrize("op", [{"op": "frobnicate", "path": "/a"}, {"path": "/a"},
                                {"op": "add", "value": 1}, {}])
def test_bad_operations_are_422(op):
    assert_422(json_patch, DOC, [op])


def test_bad_patch_shapes_are_400():
    err = raises(json_patch, DOC, {"op": "add"})
    assert (err.code, err.reason) == (400, "BadRequest")
    assert err.message == ("error decoding patch: json: cannot unmarshal object into Go value "
                           "of type []handlers.jsonPatchOp")
    err = raises(json_patch, DOC, ["add"])
    assert err.message == ("error decoding patch: json: cannot unmarshal string into Go value "
                           "of type handlers.jsonPatchOp")
    err = raises(json_patch, DOC, [{"op": "add", "path": 3}])
    assert err.message == ("error decoding patch: json: cannot unmarshal number into Go struct "
                           "field jsonPatchOp.path of type string")


def test_null_patch_is_a_no_op():
    assert json_patch(DOC, None) == DOC


def test_too_many_operations_is_413():
    ops = [{"op": "test", "path": "/metadata/name", "value": "p"}] * 10001
    err = raises(json_patch, DOC, ops)
    assert (err.code, err.reason) == (413, "RequestEntityTooLarge")
    assert err.message == ("Request entity too large: The allowed maximum operations in a "
                           "JSON patch is 10000, got 10001")
    assert json_patch(DOC, ops[:10000]) == DOC


def test_json_patch_never_mutates_inputs():
    doc, ops = copy.deepcopy(DOC), [{"op": "add", "path": "/spec/v", "value": {"a": [1]}},
                                    {"op": "add", "path": "/spec/v/a/-", "value": 2}]
    saved = copy.deepcopy(ops)
    out = json_patch(doc, ops)
    assert doc == DOC and ops == saved and out["spec"]["v"] == {"a": [1, 2]}


# ---- merge patch ------------------------------------------------------------------------

@pytest.mark.parametrize("target,patch,result", [  # RFC 7386 appendix A (object targets)
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc7386_examples(target, patch, result):
    assert merge_patch(target, patch) == result


def test_merge_patch_labels_and_lists_replaced():
    doc = {"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]}}
    out = merge_patch(doc, {"metadata": {"labels": {"a": None, "c": "3"}, "finalizers": ["z"]}})
    assert out == {"metadata": {"labels": {"b": "2", "c": "3"}, "finalizers": ["z"]}}


def test_merge_patch_prunes_nulls_inside_inserted_arrays():
    # evanphx/json-patch v4 behaviour the apiserver inherits
    out = merge_patch({"a": [1]}, {"a": [1, None, {"b": None, "c": 1}]})
    assert out == {"a": [1, {"c": 1}]}


def test_merge_patch_errors():
    err = raises(merge_patch, {"a": 1}, ["c"])
    assert (err.code, err.message) == (400, "error decoding patch: json: cannot unmarshal array "
                                             "into Go value of type map[string]interface {}")
    err = raises(merge_patch, {"a": 1}, "bar")
    assert "cannot unmarshal string into" in err.message
    err = raises(merge_patch, {"a": 1}, None)
    assert (err.code, err.reason, err.message) == (400, "BadRequest", "Invalid JSON Patch")


def test_merge_patch_never_mutates_inputs():
    doc, p = {"a": {"b": 1}}, {"a": {"c": {"d": 1}}}
    out = merge_patch(doc, p)
    out["a"]["c"]["d"] = 2
    assert doc == {"a": {"b": 1}} and p == {"a": {"c": {"d": 1}}}


# ---- strategic merge patch on real shapes -----------------------------------------------

def make_pod():
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"},
                     "finalizers": ["a", "b"], "annotations": {"x": "1"}},
        "spec": {
            "containers": [
                {"name": "app", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                 "ports": [{"containerPort": 80, "protocol": "TCP"},
                           {"containerPort": 443, "protocol": "TCP"}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "terminationMessagePath": "/dev/termination-log"},
                {"name": "sidecar", "image": "busybox", "command": ["sleep", "1d"]},
            ],
            "volumes": [{"name": "data", "emptyDir": {}},
                        {"name": "cfg", "configMap": {"name": "c"}}],
            "tolerations": [{"key": "k1", "operator": "Exists"},
                            {"key": "k2", "operator": "Exists"}],
        },
    }


def container(pod, name):
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def test_update_image_of_one_container():
    out = strategic_merge_patch(make_pod(), {"spec": {"containers": [
        {"name": "sidecar", "image": "busybox:1.36"}]}}, POD)
    assert container(out, "sidecar") == {"name": "sidecar", "image": "busybox:1.36",
                                         "command": ["sleep", "1d"]}
    assert container(out, "app") == make_pod()["spec"]["containers"][0]
    assert [c["name"] for c in out["spec"]["containers"]] == ["app", "sidecar"]


def test_added_container_goes_first():
    out = strategic_merge_patch(make_pod(), {"spec": {"containers": [
        {"name": "new", "image": "redis"}]}}, POD)
    # patch items come first unless the live order says otherwise (mergeSortedSlice)
    assert [c["name"] for c in out["spec"]["containers"]] == ["new", "app", "sidecar"]
    assert container(out, "new") == {"name": "new", "image": "redis"}


def test_delete_container_with_patch_delete():
    out = strategic_merge_patch(make_pod(), {"spec": {"containers": [
        {"name": "sidecar", "$patch": "delete"}]}}, POD)
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]


def test_env_merged_by_name():
    out = strategic_merge_patch(make_pod(), {"spec": {"containers": [
        {"name": "app", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"},
                                {"name": "A", "$patch": "delete"}]}]}}, POD)
    assert container(out, "app")["env"] == [{"name": "B", "value": "20"},
                                            {"name": "C", "value": "3"}]


def test_container_ports_merged_by_container_port():
    out = strategic_merge_patch(make_pod(), {"spec": {"containers": [
        {"name": "app", "ports": [{"containerPort": 443, "name": "https"},
                                  {"containerPort": 8080}]}]}}, POD)
    assert container(out, "app")["ports"] == [
        {"containerPort": 80, "protocol": "TCP"},
        {"containerPort": 443, "protocol": "TCP", "name": "https"},
        {"containerPort": 8080}]


def test_volume_retain_keys_switches_source():
    out = strategic_merge_patch(make_pod(), {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}, {"name": "cfg"}],
        "volumes": [{"$retainKeys": ["hostPath", "name"], "emptyDir": None,
                     "hostPath": {"path": "/srv"}, "name": "data"}]}}, POD)
    assert out["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/srv"}},
                                      {"name": "cfg", "configMap": {"name": "c"}}]


def test_retain_keys_rejects_patch_field_not_listed():
    err = raises(strategic_merge_patch, make_pod(), {"spec": {"volumes": [
        {"$retainKeys": ["name"], "name": "data", "hostPath": {"path": "/x"}}]}}, POD)
    assert (err.code, err.reason, err.message) == (400, "BadRequest",
                                                   "invalid patch format of retainKeys")
    err = raises(strategic_merge_patch, make_pod(), {"spec": {"volumes": [
        {"$retainKeys": "name", "name": "data"}]}}, POD)
    assert err.message == "invalid patch format of retainKeys"


def test_service_ports_merged_by_port():
    svc = {"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                              {"name": "https", "port": 443, "targetPort": 8443}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}},
                                SERVICE)
    assert out["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080},
                                    {"name": "https", "port": 443, "targetPort": 9443}]


def test_finalizers_union_and_delete_from_primitive_list():
    out = strategic_merge_patch(make_pod(), {"metadata": {"finalizers": ["b", "c"]}}, POD)
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = strategic_merge_patch(make_pod(), {"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["a", "zzz"]}}, POD)
    assert out["metadata"]["finalizers"] == ["b"]


def test_delete_from_primitive_list_never_creates_the_field():
    pod = make_pod()
    del pod["metadata"]["finalizers"]
    out = strategic_merge_patch(pod, {"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["a"]}}, POD)
    assert "finalizers" not in out["metadata"]


def test_delete_from_primitive_list_applies_to_atomic_lists_too():
    out = strategic_merge_patch(make_pod(), {"spec": {"containers": [
        {"name": "sidecar", "$deleteFromPrimitiveList/command": ["1d"]}]}}, POD)
    assert container(out, "sidecar")["command"] == ["sleep"]


def test_set_element_order_reorders_containers():
    out = strategic_merge_patch(make_pod(), {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]}}, POD)
    assert [c["name"] for c in out["spec"]["containers"]] == ["sidecar", "app"]


def test_set_element_order_with_add_delete_and_server_only_item():
    # kubectl apply replacing container "sidecar" by "new" while the server injected "proxy"
    pod = make_pod()
    pod["spec"]["containers"].insert(1, {"name": "proxy", "image": "envoy"})
    out = strategic_merge_patch(pod, {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "new"}],
        "containers": [{"name": "new", "image": "redis"},
                       {"name": "sidecar", "$patch": "delete"}]}}, POD)
    assert [c["name"] for c in out["spec"]["containers"]] == ["app", "proxy", "new"]


def test_set_element_order_must_match_patch_list():
    err = raises(strategic_merge_patch, make_pod(), {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"name": "sidecar", "image": "x"}, {"name": "app", "image": "y"}]}}, POD)
    assert (err.code, err.reason) == (500, "")
    assert err.message.startswith("The order in patch list:\n[map[image:x name:sidecar] ")


def test_tolerations_replaced_wholesale():
    out = strategic_merge_patch(make_pod(), {"spec": {"tolerations": [{"key": "k3"}]}}, POD)
    assert out["spec"]["tolerations"] == [{"key": "k3"}]


def test_labels_null_deletes_and_merge():
    out = strategic_merge_patch(make_pod(), {"metadata": {"labels": {"tier": None, "v": "2"},
                                                          "annotations": None}}, POD)
    assert out["metadata"]["labels"] == {"app": "web", "v": "2"}
    assert "annotations" not in out["metadata"]


def test_patch_replace_directive_in_list_and_map():
    out = strategic_merge_patch(make_pod(), {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "only", "image": "x"}]}}, POD)
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]
    out = strategic_merge_patch(make_pod(), {"metadata": {"labels": {"$patch": "replace",
                                                                     "k": "v"}}}, POD)
    assert out["metadata"]["labels"] == {"k": "v"}
    out = strategic_merge_patch(make_pod(), {"metadata": {"labels": {"$patch": "delete"}}}, POD)
    assert out["metadata"]["labels"] == {}


def test_directives_and_nulls_never_reach_the_result():
    pod = make_pod()
    del pod["spec"]["volumes"]
    out = strategic_merge_patch(pod, {"spec": {
        "volumes": [{"name": "gone", "$patch": "delete"},
                    {"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {},
                     "secret": None}],
        "containers": [{"name": "new", "env": [{"name": "X", "$patch": "delete"}],
                        "resources": None}]}}, POD)
    assert out["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert container(out, "new") == {"name": "new", "env": [{"name": "X"}]}
    assert "$" not in json.dumps(out)


def test_unknown_fields_merge_like_merge_patch():
    doc = {"spec": {"custom": {"a": 1, "l": [1, 2]}}}
    out = strategic_merge_patch(doc, {"spec": {"custom": {"b": 2, "l": [3]}}}, POD)
    assert out == {"spec": {"custom": {"a": 1, "b": 2, "l": [3]}}}
    assert strategic_merge_patch({"a": [1]}, {"a": [2]}, "no.such.Definition") == {"a": [2]}


def test_kubectl_apply_three_way_patch_of_changed_image():
    live = make_pod()
    live["spec"]["containers"] = live["spec"]["containers"][:1]
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"old":true}\n'}
    # what `kubectl apply` sends after nginx:1.25 -> nginx:1.26 in the manifest
    body = json.dumps({
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"new":true}\n'}},
        "spec": {"$setElementOrder/containers": [{"name": "app"}],
                 "containers": [{"image": "nginx:1.26", "name": "app"}]}}).encode()
    out = apply_patch(STRATEGIC_MERGE_PATCH, live, body, POD)
    expected = copy.deepcopy(live)
    expected["spec"]["containers"][0]["image"] = "nginx:1.26"
    expected["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"new":true}\n'}
    assert out == expected


def test_smp_errors():
    err = raises(strategic_merge_patch, make_pod(), {"spec": {"containers": [
        {"name": "app", "$patch": "merge"}]}}, POD)
    assert (err.code, err.reason, err.message) == (
        500, "", "merging lists cannot yet be specified in the patch")
    err = raises(strategic_merge_patch, make_pod(), {"metadata": {"labels": {"$patch": "foo"}}},
                 POD)
    assert err.message == "unknown patch type: foo in map: map[$patch:foo]"
    err = raises(strategic_merge_patch, make_pod(), {"spec": {"containers": [{"image": "x"}]}},
                 POD)
    assert err.message == "map: map[image:x] does not contain declared merge key: name"
    err = raises(strategic_merge_patch, make_pod(), {"metadata": {"$deleteFromPrimitiveList": []}},
                 POD)
    assert (err.code, err.message) == (400, "invalid patch format of primitive list")
    err = raises(strategic_merge_patch, make_pod(), {"spec": {"$setElementOrderX/a": []}}, POD)
    assert (err.code, err.message) == (400, "invalid patch format of setElementOrder list")
    assert_422(strategic_merge_patch, {"metadata": {"finalizers": [["a"]]}},
               {"metadata": {"finalizers": [["b"]]}}, POD)
    err = raises(strategic_merge_patch, make_pod(), ["x"], POD)
    assert (err.code, err.message) == (
        400, "json: cannot unmarshal array into Go value of type map[string]interface {}")


def test_smp_null_patch_and_inputs_untouched():
    pod, p = make_pod(), {"spec": {"containers": [{"name": "app", "$patch": "delete"}]}}
    saved = copy.deepcopy(p)
    assert strategic_merge_patch(pod, None, POD) == make_pod()
    strategic_merge_patch(pod, p, POD)
    assert pod == make_pod() and p == saved


# ---- Go's own test cases (apimachinery strategicpatch patch_test.go), synthetic schema ----

ITEM = {"properties": {
    "name": {}, "value": {}, "other": {},
    "mergingList": {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
    "nonMergingList": {},
    "mergingIntList": {"x-kubernetes-patch-strategy": "merge", "items": {"type": "integer"}},
    "nonMergingIntList": {"items": {"type": "integer"}},
    "simpleMap": {"additionalProperties": {"type": "string"}},
}}
for _field in ("mergingList", "nonMergingList"):
    ITEM["properties"][_field]["items"] = ITEM


def ml(*names, **extra):
    return [{"name": n, **extra.get(str(n), {})} for n in names]


@pytest.mark.parametrize("current,patch,result", [
    ({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]},
     {"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"},
                      {"name": 1, "value": "a"}]}),
    ({"mergingIntList": [1, 2, 3]}, {"mergingIntList": [3, 1]}, {"mergingIntList": [2, 3, 1]}),
    ({"mergingIntList": [1, 2]}, {"mergingIntList": [2, 3]}, {"mergingIntList": [1, 2, 3]}),
    ({"mergingList": ml(1, 1, 2, 3, 3)},
     {"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]},
     {"mergingList": ml(2)}),
    ({"mergingList": ml(1, 3)},
     {"$setElementOrder/mergingList": ml(3, 2, 1), "mergingList": ml(3, 1)},
     {"mergingList": ml(3, 1)}),
    ({"mergingIntList": [1, 3]}, {"$setElementOrder/mergingIntList": [3, 2, 1]},
     {"mergingIntList": [3, 1]}),
    ({"mergingIntList": [1, 2, 3, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}),
    ({"nonMergingIntList": [1, 2, 3]}, {"$deleteFromPrimitiveList/nonMergingIntList": [2]},
     {"nonMergingIntList": [1, 3]}),
    ({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": ml(4, 1, 2, 3),
      "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]},
     {"mergingList": [{"name": 4, "value": 4}, {"name": 1, "other": "a"},
                      {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
    ({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]},
     {"$setElementOrder/mergingList": ml(2, 3),
      "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]},
     {"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}),
    ({"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "other": "c"}]},
     {"$setElementOrder/mergingList": ml(2, 3),
      "mergingList": [{"name": 2}, {"name": 3}, {"name": 1, "$patch": "delete"}]},
     {"mergingList": [{"name": 4, "other": "c"}, {"name": 2}, {"name": 3}]}),
    ({"name": "hi", "mergingList": ml("hello2")},
     {"$setElementOrder/mergingList": ml("hello", "doesntexist"),
      "mergingList": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]},
     {"name": "hi", "mergingList": ml("hello", "hello2")}),
])
def test_upstream_cases(current, patch, result):
    assert P._strategic_merge(current, patch, ITEM) == result


# ---- apply_patch dispatch and body decoding ---------------------------------------------

def test_dispatch_by_content_type_with_parameters():
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "c"}]}}
    out = apply_patch("application/merge-patch+json; charset=utf-8", doc,
                      b'{"metadata":{"labels":{"a":null}}}', POD)
    assert out["metadata"]["labels"] == {}
    out = apply_patch(JSON_PATCH, doc, '[{"op":"add","path":"/spec/x","value":1}]', POD)
    assert out["spec"]["x"] == 1
    out = apply_patch(STRATEGIC_MERGE_PATCH, doc,
                      b'{"spec":{"containers":[{"name":"d"}]}}', POD)
    assert [c["name"] for c in out["spec"]["containers"]] == ["d", "c"]
    out = apply_patch(MERGE_PATCH, doc, b'{"spec":{"containers":[{"name":"d"}]}}', POD)
    assert out["spec"]["containers"] == [{"name": "d"}]


@pytest.mark.parametrize("ctype", ["application/json", "", "Application/merge-patch+json",
                                   "application/apply-patch+yaml"])
def test_unsupported_content_types_are_415(ctype):
    err = raises(apply_patch, ctype, {}, b"{}", POD)
    assert (err.code, err.reason) == (415, "UnsupportedMediaType")
    assert err.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml")


@pytest.mark.parametrize("body,message", [
    (b"", "unexpected end of JSON input"),
    (b'{"a":1', "unexpected end of JSON input"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b"{} x", "invalid character 'x' after top-level value"),
    (b"tru", "unexpected end of JSON input"),
    (b"trUe", "invalid character 'U' in literal true (expecting 'u')"),
    (b"NaN", "invalid character 'N' looking for beginning of value"),
    (b"'a'", "invalid character '\\'' looking for beginning of value"),
    (b'{"a":-}', "invalid character '}' in numeric literal"),
    (b'{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
    (b'{"a":1e}', "invalid character '}' in exponent of numeric literal"),
    (b'{"a":"\\q"}', "invalid character 'q' in string escape code"),
    (b'{"a":"\\u12x4"}', "invalid character 'x' in \\u hexadecimal character escape"),
    (b'{"a":"\n"}', "invalid character '\\n' in string literal"),
    (b"\xef\xbb\xbf{}", "invalid character '\u00ef' looking for beginning of value"),
])
def test_invalid_json_bodies_are_400_in_go_words(body, message):
    err = raises(apply_patch, STRATEGIC_MERGE_PATCH, {}, body, POD)
    assert (err.code, err.reason, err.message) == (400, "BadRequest", message)
    err = raises(apply_patch, MERGE_PATCH, {}, body, POD)
    assert err.message == "error decoding patch: " + message


def test_body_numbers_keep_int_vs_float():
    out = apply_patch(MERGE_PATCH, {}, b'{"a":1,"b":1.5,"c":99999999999999999999}', POD)
    assert out == {"a": 1, "b": 1.5, "c": 1e20}
    assert type(out["a"]) is int and type(out["c"]) is float


def test_go_value_formatting():
    assert P._gofmt({"b": [1, 2.5, None], "a": True}) == "map[a:true b:[1 2.5 <nil>]]"
    assert P._gofmt(1e6) == "1e+06" and P._gofmt(123456.0) == "123456"
    assert P._gofmt(0.00001) == "1e-05" and P._gofmt(-0.5) == "-0.5"
    assert P._gofmt(7, "s") == "%!s(int64=7)" and P._gofmt(None, "s") == "%!s(<nil>)"


def test_go_stable_sort_matches_sorted_for_a_real_order():
    data = [(i * 7919) % 101 for i in range(75)]
    assert P._go_stable_sort(list(data), lambda a, b: a < b) == sorted(data)
