"""Objects stamped from one template share defaulting, validation, field validation and
managedFields work; the shared results must be exactly what the uncached path computes."""
from __future__ import annotations

import json

import orjson
import pytest

from shim.api.errors import StatusError
from shim.openapi import fieldvalidation
from shim.resources.pods import Pods

SPEC = {"containers": [{"name": "c", "image": "nginx", "resources": {"limits": {"cpu": "1"}}}]}


def pod(name, spec=SPEC):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "d"},
            "spec": orjson.loads(orjson.dumps(spec))}


def test_defaulting_and_validation_are_the_same_on_a_repeat():
    res = Pods()
    first, second = pod("a"), pod("b")
    res.prepare_for_create(first, None)
    res.prepare_for_create(second, None)
    assert first["spec"] == second["spec"] and first["status"] == second["status"]
    assert second["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert second["status"]["qosClass"] == "Burstable"   # cpu limit only
    second["spec"]["containers"][0]["image"] = "changed"     # no aliasing into the memo
    third = pod("c")
    res.prepare_for_create(third, None)
    assert third["spec"]["containers"][0]["image"] == "nginx"
    bad = {"containers": [{"name": "c"}]}
    for name in ("x", "Bad_Name"):
        errs = [str(e) for e in res.validate(pod(name, bad))]
        assert "spec.containers[0].image: Required value" in errs
    assert any(e.startswith("metadata.name: Invalid value: \"Bad_Name\"")
               for e in map(str, res.validate(pod("Bad_Name", bad))))


def test_field_validation_memo_still_reports_duplicates_and_unknowns():
    d = "io.k8s.api.core.v1.Pod"
    ok = pod("a")
    assert fieldvalidation.check(ok, d, "Strict", "Pod", orjson.dumps(ok)) == []
    again = pod("b")
    body = json.dumps(again).replace('"kind": "Pod"', '"kind": "Pod", "kind": "Pod"').encode()
    with pytest.raises(StatusError) as ei:
        fieldvalidation.check(again, d, "Strict", "Pod", body)
    assert 'duplicate field "kind"' in ei.value.message
    unknown = pod("c")
    unknown["spec"]["containerz"] = 1
    assert fieldvalidation.check(unknown, d, "Warn", "Pod", None) == ['unknown field "spec.containerz"']
    assert "containerz" not in unknown["spec"]
