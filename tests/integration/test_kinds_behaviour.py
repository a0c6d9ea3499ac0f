"""Per-kind strategy behaviour seen through kubectl and the API: allocation, immutability,
terminating namespaces, scale subresource, List files, explain."""
from __future__ import annotations

import json

import yaml


def test_kind_list_file_round_trip(kubectl, ns, tmp_path):
    kubectl("create", "configmap", "l1", "--from-literal=a=1", "-n", ns)
    kubectl("create", "configmap", "l2", "--from-literal=a=2", "-n", ns)
    listing = kubectl("get", "cm", "l1", "l2", "-n", ns, "-o", "yaml")
    doc = yaml.safe_load(listing)
    assert doc["kind"] == "List" and len(doc["items"]) == 2
    for item in doc["items"]:
        item["data"]["a"] = "changed"
    f = tmp_path / "list.yaml"
    f.write_text(yaml.safe_dump(doc))
    out = kubectl("apply", "-f", str(f), "-n", ns)
    assert "configmap/l1 configured" in out and "configmap/l2 configured" in out
    assert kubectl("get", "cm", "l2", "-n", ns, "-o", "jsonpath={.data.a}") == "changed"


def test_explain_uses_openapi_v3(kubectl):
    out = kubectl("explain", "pod.spec.restartPolicy")
    assert "KIND:" in out and "Pod" in out and "restartPolicy" in out
    out = kubectl("explain", "rc.spec")
    assert "replicas" in out and "selector" in out


def test_service_cluster_ip_allocation(kubectl, ns, raw):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fixed"},
           "spec": {"clusterIP": "10.43.200.7", "ports": [{"port": 80}]}}
    code, o, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/services", json.dumps(svc))
    assert code == 201 and o["spec"]["clusterIPs"] == ["10.43.200.7"]
    assert o["spec"]["ipFamilies"] == ["IPv4"] and o["spec"]["type"] == "ClusterIP"
    svc["metadata"]["name"] = "fixed2"
    code, st, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/services", json.dumps(svc))
    assert code == 422 and "provided IP is already allocated" in st["message"]
    code, _, _, _ = raw("DELETE", f"/api/v1/namespaces/{ns}/services/fixed")
    assert code == 200
    code, o, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/services", json.dumps(svc))
    assert code == 201 and o["spec"]["clusterIP"] == "10.43.200.7"
    np = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
          "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    code, o, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/services", json.dumps(np))
    assert code == 201 and 30000 <= o["spec"]["ports"][0]["nodePort"] <= 32767
    assert o["spec"]["externalTrafficPolicy"] == "Cluster"
    out = kubectl("get", "svc", "np", "-n", ns)
    assert f"80:{o['spec']['ports'][0]['nodePort']}/TCP" in out
    # updates keep the allocated IP when the client leaves it out
    code, o2, _, _ = raw("PUT", f"/api/v1/namespaces/{ns}/services/np", json.dumps(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
         "spec": {"type": "NodePort", "ports": [{"port": 80}]}}))
    assert code == 200 and o2["spec"]["clusterIP"] == o["spec"]["clusterIP"]
    assert o2["spec"]["ports"][0]["nodePort"] == o["spec"]["ports"][0]["nodePort"]


def test_immutable_secret(kubectl, ns, raw):
    s = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "imm"}, "immutable": True,
         "data": {"a": "YQ=="}}
    assert raw("POST", f"/api/v1/namespaces/{ns}/secrets", json.dumps(s))[0] == 201
    r = kubectl.run("patch", "secret", "imm", "-n", ns, "-p", '{"data":{"a":"Yg=="}}', check=False)
    assert r.returncode == 1
    assert "field is immutable when `immutable` is set" in r.stderr
    code, st, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/secrets", json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b64"}, "data": {"a": "!!"}}))
    assert code == 400 and st["reason"] == "BadRequest"


def test_create_in_terminating_namespace_is_forbidden(raw):
    raw("POST", "/api/v1/namespaces", json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "term"}}))
    # a finalizer of our own keeps the namespace in Terminating while we look
    raw("POST", "/api/v1/namespaces/term/configmaps", json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))
    code, nsobj, _, _ = raw("DELETE", "/api/v1/namespaces/term")
    assert code == 200 and nsobj["status"]["phase"] == "Terminating"
    code, st, _, _ = raw("POST", "/api/v1/namespaces/term/configmaps", json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}))
    assert code == 403
    assert st["message"] == ('configmaps "late" is forbidden: unable to create new content in '
                             'namespace term because it is being terminated')
    raw("PATCH", "/api/v1/namespaces/term/configmaps/held", '{"metadata":{"finalizers":null}}',
        headers={"Content-Type": "application/merge-patch+json"})


def test_rc_defaults_and_scale_subresource(kubectl, ns, raw):
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
          "spec": {"template": {"metadata": {"labels": {"app": "rc"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    code, o, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/replicationcontrollers", json.dumps(rc))
    assert code == 201
    assert o["spec"]["replicas"] == 1 and o["spec"]["selector"] == {"app": "rc"}
    assert o["metadata"]["labels"] == {"app": "rc"} and o["metadata"]["generation"] == 1
    code, sc, _, _ = raw("GET", f"/api/v1/namespaces/{ns}/replicationcontrollers/rc/scale")
    assert sc["kind"] == "Scale" and sc["apiVersion"] == "autoscaling/v1"
    assert sc["spec"]["replicas"] == 1 and sc["status"]["selector"] == "app=rc"
    assert "scaled" in kubectl("scale", "rc", "rc", "--replicas=3", "-n", ns)
    code, o, _, _ = raw("GET", f"/api/v1/namespaces/{ns}/replicationcontrollers/rc")
    assert o["spec"]["replicas"] == 3 and o["metadata"]["generation"] == 2
    bad = dict(rc, metadata={"name": "bad"})
    bad["spec"] = dict(rc["spec"], selector={"app": "other"})
    r = kubectl.run("create", "-f", "-", "-n", ns, input=json.dumps(bad), check=False)
    assert "`selector` does not match template `labels`" in r.stderr


def test_pod_binding_and_graceful_delete(raw, ns):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert raw("POST", f"/api/v1/namespaces/{ns}/pods", json.dumps(pod))[0] == 201
    code, st, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/pods/b/binding", json.dumps(
        {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"},
         "target": {"kind": "Node", "name": "n1"}}))
    assert code == 201 and st["status"] == "Success"
    code, st, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/pods/b/binding", json.dumps(
        {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"},
         "target": {"kind": "Node", "name": "n2"}}))
    assert code == 409 and 'pod b is already assigned to node "n1"' in st["message"]
    code, p, _, _ = raw("GET", f"/api/v1/namespaces/{ns}/pods/b")
    assert p["spec"]["nodeName"] == "n1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in p["status"]["conditions"])
    # a scheduled pod is deleted gracefully: it stays, Terminating, until grace 0
    code, p, _, _ = raw("DELETE", f"/api/v1/namespaces/{ns}/pods/b")
    assert code == 200 and p["metadata"]["deletionGracePeriodSeconds"] == 30
    assert raw("GET", f"/api/v1/namespaces/{ns}/pods/b")[0] == 200
    code, p, _, _ = raw("DELETE", f"/api/v1/namespaces/{ns}/pods/b?gracePeriodSeconds=0")
    assert code == 200
    assert raw("GET", f"/api/v1/namespaces/{ns}/pods/b")[0] == 404
