"""Wire-level behaviour: discovery, tables, bad input answered with metav1.Status, watch edge cases."""
from __future__ import annotations

import http.client
import json
import time

import pytest

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
AGG = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
       "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


def test_version_and_health(raw):
    code, v, _, _ = raw("GET", "/version")
    assert code == 200 and v["major"] == "1" and v["minor"] == "32"
    assert v["gitVersion"].startswith("v1.32.")
    for p in ("/healthz", "/livez", "/readyz"):
        code, _, _, body = raw("GET", p)
        assert (code, body) == (200, b"ok")


def test_discovery_documents(raw):
    code, api, _, _ = raw("GET", "/api")
    assert api["versions"] == ["v1"] and api["serverAddressByClientCIDRs"]
    code, apis, _, _ = raw("GET", "/apis")
    assert code == 200 and apis["kind"] == "APIGroupList"
    _, v1, _, _ = raw("GET", "/api/v1")
    by = {r["name"]: r for r in v1["resources"]}
    assert by["pods"]["shortNames"] == ["po"] and by["pods"]["categories"] == ["all"]
    assert by["pods"]["singularName"] == "pod" and by["pods"]["namespaced"] is True
    assert by["replicationcontrollers/scale"]["group"] == "autoscaling"
    assert by["replicationcontrollers/scale"]["version"] == "v1"
    assert by["pods/eviction"]["group"] == "policy"
    assert "deletecollection" not in by["namespaces"]["verbs"]
    for plural, short in [("services", "svc"), ("endpoints", "ep"), ("namespaces", "ns"),
                          ("resourcequotas", "quota"), ("nodes", "no"), ("events", "ev"),
                          ("configmaps", "cm"), ("serviceaccounts", "sa"),
                          ("replicationcontrollers", "rc")]:
        assert short in by[plural]["shortNames"], plural
    code, agg, headers, _ = raw("GET", "/api", headers={"Accept": AGG})
    assert headers["content-type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    res = {r["resource"]: r for r in agg["items"][0]["versions"][0]["resources"]}
    assert res["pods"]["singularResource"] == "pod" and res["pods"]["scope"] == "Namespaced"
    assert {s["subresource"] for s in res["pods"]["subresources"]} >= {"status", "log", "exec"}


def test_table_pod_columns(raw, ns):
    raw("POST", f"/api/v1/namespaces/{ns}/pods", json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tp"},
        "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}))
    code, t, _, _ = raw("GET", f"/api/v1/namespaces/{ns}/pods", headers={"Accept": TABLE})
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    names = [(c["name"], c["priority"]) for c in t["columnDefinitions"]]
    assert names[:5] == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0)]
    assert ("IP", 1) in names and ("Node", 1) in names
    row = t["rows"][0]
    assert row["cells"][:4] == ["tp", "0/2", "Pending", "0"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    code, t, _, _ = raw("GET", f"/api/v1/namespaces/{ns}/pods?includeObject=Object",
                        headers={"Accept": TABLE})
    assert t["rows"][0]["object"]["kind"] == "Pod"
    code, st, _, _ = raw("GET", f"/api/v1/namespaces/{ns}/pods?includeObject=Bogus",
                         headers={"Accept": TABLE})
    assert code == 400 and st["message"] == 'unrecognized includeObject value: "Bogus"'


@pytest.mark.parametrize("body,ctype,code,reason,message", [
    (b"{not json", "application/json", 400, "BadRequest", None),
    (b"- a\n- b: [", "application/yaml", 400, "BadRequest", None),
    (b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}}', "application/json", 400,
     "BadRequest", None),
    (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}',
     "application/json", 400, "BadRequest",
     "the namespace of the provided object does not match the namespace sent on the request"),
    (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}', "text/plain", 415,
     "UnsupportedMediaType", None),
    (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}', "application/json", 422, "Invalid",
     'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'),
])
def test_bad_create_bodies(raw, ns, body, ctype, code, reason, message):
    before = raw("GET", f"/api/v1/namespaces/{ns}/configmaps")[1]["items"]
    got, status, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", body,
                            headers={"Content-Type": ctype})
    assert got == code
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["reason"] == reason and status["code"] == code
    if message:
        assert status["message"] == message
    after = raw("GET", f"/api/v1/namespaces/{ns}/configmaps")[1]["items"]
    assert len(after) == len(before)


def test_too_large_and_unknown_path(raw, ns):
    big = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                      "data": {"a": "x" * (3 * 1024 * 1024 + 10)}})
    code, st, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", big)
    assert code == 413 and st["reason"] == "RequestEntityTooLarge"
    for path in ("/api/v1/nothing", "/apis/foo.example/v1", "/nope", "/api/v2"):
        code, st, _, _ = raw("GET", path)
        assert code == 404 and st["kind"] == "Status" and st["reason"] == "NotFound"


def test_generate_name_and_rv_on_create(raw, ns):
    code, o, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/configmaps",
                        '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"gen-"}}')
    assert code == 201 and o["metadata"]["name"].startswith("gen-") and len(o["metadata"]["name"]) == 9
    code, st, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/configmaps",
                         '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"rv","resourceVersion":"5"}}')
    assert code == 500 and st["message"] == "resourceVersion should not be set on objects to be created"
    assert "reason" not in st


def test_watch_too_old_resource_version_gives_410_event(tmp_path):
    from tests.conftest import Raw, ServerProcess
    s = ServerProcess(str(tmp_path / "srv"), extra_args=["--store-history", "5",
                                                        "--compact-interval", "0.2"]).start()
    try:
        r = Raw(s)
        for i in range(20):
            r("POST", "/api/v1/namespaces/default/configmaps",
              json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}}))
        time.sleep(0.6)
        code, _, _, body = r("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=2")
        assert code == 200
        ev = json.loads(body.splitlines()[0])
        assert ev["type"] == "ERROR"
        assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
        assert ev["object"]["message"].startswith("too old resource version: 2 (")
    finally:
        s.stop()


def test_watch_timeout_and_bookmark_shape(raw, ns):
    t0 = time.monotonic()
    code, _, headers, body = raw("GET", f"/api/v1/namespaces/{ns}/configmaps?watch=1&timeoutSeconds=1")
    assert code == 200 and 0.9 <= time.monotonic() - t0 < 5
    lines = [json.loads(x) for x in body.splitlines() if x]
    assert all(e["type"] == "ADDED" for e in lines)
    assert {e["object"]["metadata"]["name"] for e in lines} >= {"kube-root-ca.crt"}
