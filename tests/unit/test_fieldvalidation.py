"""fieldValidation Strict/Warn/Ignore: unknown and duplicate field paths and messages."""
from __future__ import annotations

import copy

import orjson
import pytest

from shim.api.errors import StatusError
from shim.openapi import fieldvalidation as fv

POD = "io.k8s.api.core.v1.Pod"
RC = "io.k8s.api.core.v1.ReplicationController"


def pod(**spec_extra) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "x"}, "annotations": {"any/key": "v"}},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                                     "ports": [{"containerPort": 80}],
                                     "resources": {"limits": {"cpu": "1", "memory": 128}}}],
                     **spec_extra}}


def test_valid_pod_has_no_unknown_fields():
    obj = pod(restartPolicy="Always")
    obj["metadata"]["managedFields"] = [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}]
    obj["metadata"]["creationTimestamp"] = None
    obj["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    assert fv.unknown_fields(obj, POD) == []


def test_unknown_paths_nested_lists_and_structs():
    obj = pod(containerz=[])
    obj["spec"]["containers"][0]["imagez"] = "x"
    obj["spec"]["containers"][0]["ports"][0]["foo"] = 1
    obj["metadata"]["labelz"] = {}
    obj["bar"] = True
    assert fv.unknown_fields(obj, POD) == [
        "metadata.labelz", "spec.containers[0].ports[0].foo", "spec.containers[0].imagez",
        "spec.containerz", "bar"]


def test_maps_and_leaves_accept_anything():
    obj = pod(nodeSelector={"weird key": "v"})
    obj["spec"]["containers"][0]["ports"][0]["containerPort"] = {"not": "validated here"}
    obj["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"port": "http", "path": "/"}}
    assert fv.unknown_fields(obj, POD) == []


def test_nested_template_and_case_sensitivity():
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
          "spec": {"replicas": 1, "selector": {"a": "b"},
                   "template": {"metadata": {"labels": {"a": "b"}},
                                "spec": {"containers": [{"name": "c", "image": "i"},
                                                        {"name": "d", "Image": "i"}]},
                                "kind": "Pod"}}}
    assert fv.unknown_fields(rc, RC) == ["spec.template.spec.containers[1].Image", "spec.template.kind"]


def test_duplicate_fields_in_json_body():
    body = (b'{"metadata":{"name":"a","name":"b","labels":{"x":"1","x":"2"}},'
            b'"spec":{"containers":[{"name":"c","name":"d"}]}}')
    assert fv.duplicate_fields(body) == ["metadata.name", "metadata.labels.x", "spec.containers[0].name"]
    assert fv.duplicate_fields(b"apiVersion: v1\n") == []


def test_strict_message_exact_text_and_order():
    body = (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","name":"q"},'
            b'"spec":{"foo":1,"containers":[{"name":"c","image":"i"}]},"bar":2}')
    obj = orjson.loads(body)
    with pytest.raises(StatusError) as e:
        fv.check(obj, POD, "Strict", "Pod", body)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert e.value.message == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'duplicate field "metadata.name", unknown field "spec.foo", unknown field "bar"')


def test_strict_without_problems_returns_empty_and_keeps_object():
    obj = pod()
    before = copy.deepcopy(obj)
    assert fv.check(obj, POD, "Strict", "Pod", orjson.dumps(obj)) == []
    assert obj == before


def test_strict_patch_form_has_no_kind_prefix():
    obj = pod(foo=1)
    with pytest.raises(StatusError) as e:
        fv.check(obj, POD, "Strict", "Pod", prefixed=False)
    assert e.value.message == 'strict decoding error: unknown field "spec.foo"'


def test_warn_returns_warnings_and_prunes():
    obj = pod(foo=1)
    obj["spec"]["containers"][0]["imagez"] = "x"
    warnings = fv.check(obj, POD, "Warn", "Pod")
    assert warnings == ['unknown field "spec.containers[0].imagez"', 'unknown field "spec.foo"']
    assert "foo" not in obj["spec"] and "imagez" not in obj["spec"]["containers"][0]
    assert obj["spec"]["containers"][0]["image"] == "nginx"
    # Warn is the default when the parameter is absent
    obj2 = pod(foo=1)
    assert fv.check(obj2, POD, None, "Pod") == ['unknown field "spec.foo"'] and "foo" not in obj2["spec"]


def test_warn_reports_duplicates_once():
    body = b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"x":1,"x":2,"kind":"Pod"}'
    obj = orjson.loads(body)
    assert fv.check(obj, POD, "Warn", "Pod", body) == ['unknown field "x"', 'duplicate field "kind"']
    assert "x" not in obj


def test_ignore_prunes_silently():
    obj = pod(foo=1)
    obj["metadata"]["bogus"] = 1
    assert fv.check(obj, POD, "Ignore", "Pod") == []
    assert "foo" not in obj["spec"] and "bogus" not in obj["metadata"]


def test_prune_unknown_in_place():
    obj = {"apiVersion": "v1", "kind": "Pod", "zzz": 1, "spec": {"containers": [{"name": "c", "q": 1}]}}
    out = fv.prune_unknown(obj, POD)
    assert out is obj
    assert obj == {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c"}]}}


def test_errors_are_capped_at_100():
    obj = {"apiVersion": "v1", "kind": "Pod", **{f"f{i:03d}": i for i in range(150)}}
    assert len(fv.strict_errors(obj, POD)) == 100
