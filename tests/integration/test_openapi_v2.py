"""/openapi/v2 as a gnostic openapi_v2.Document: the wire form, and what kubectl does with it
(explain -o plaintext-openapiv2, kubectl 1.20 --dry-run=server, client-side validation of kind: List)."""
from __future__ import annotations

import json

from tests.conftest import Kubectl
from shim.openapi.proto import openapiv2_pb2 as pb

PB_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def _document(raw) -> tuple[pb.Document, dict]:
    status, _, headers, data = raw("GET", "/openapi/v2", headers={"Accept": PB_ACCEPT})
    assert status == 200
    doc = pb.Document()
    doc.ParseFromString(data)
    return doc, headers


def _ctype(headers: dict) -> str:
    return {k.lower(): v for k, v in headers.items()}["content-type"]


def _extensions(named) -> dict:
    return {e.name: json.loads(e.value.yaml) for e in named}


def test_protobuf_document_has_paths_and_definitions(raw):
    doc, headers = _document(raw)
    # Go's mime parser rejects the "@" spelling; the dotted one is what the apiserver answers.
    assert _ctype(headers) == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert doc.swagger == "2.0"
    paths = {p.name: p.value for p in doc.paths.path}
    patch = paths["/api/v1/namespaces/{namespace}/pods/{name}"].patch
    assert patch.operation_id == "patchCoreV1NamespacedPod"
    assert _extensions(patch.vendor_extension)["x-kubernetes-group-version-kind"] == \
        {"group": "", "kind": "Pod", "version": "v1"}
    query = [p.parameter.non_body_parameter.query_parameter_sub_schema.name
             for p in patch.parameters if p.parameter.HasField("non_body_parameter")]
    assert {"dryRun", "fieldManager", "fieldValidation", "force"} <= set(query)
    body = patch.parameters[0].parameter.body_parameter
    assert (body.name, body.required) == ("body", True)
    assert body.schema._ref == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
    assert "application/strategic-merge-patch+json" in patch.consumes
    ok = {r.name: r.value.response for r in patch.responses.response_code}["200"]
    assert ok.schema.schema._ref == "#/definitions/io.k8s.api.core.v1.Pod"

    defs = {d.name: d.value for d in doc.definitions.additional_properties}
    pod = defs["io.k8s.api.core.v1.Pod"]
    assert _extensions(pod.vendor_extension)["x-kubernetes-group-version-kind"] == \
        [{"group": "", "kind": "Pod", "version": "v1"}]
    props = {p.name: p.value for p in pod.properties.additional_properties}
    assert props["spec"]._ref == "#/definitions/io.k8s.api.core.v1.PodSpec"
    containers = {p.name: p.value for p in defs["io.k8s.api.core.v1.PodSpec"]
                  .properties.additional_properties}["containers"]
    assert list(containers.type.value) == ["array"]
    assert containers.items.schema[0]._ref == "#/definitions/io.k8s.api.core.v1.Container"
    assert _extensions(containers.vendor_extension)["x-kubernetes-patch-merge-key"] == "name"
    # every reference resolves (kubectl's model parser fails on unknown models)
    refs = {r for r in _all_refs(doc)}
    assert refs and all(r[len("#/definitions/"):] in defs for r in refs)


def _all_refs(doc: pb.Document):
    def walk(s: pb.Schema):
        if s._ref:
            yield s._ref
        for p in s.properties.additional_properties:
            yield from walk(p.value)
        for x in s.items.schema:
            yield from walk(x)
        if s.additional_properties.HasField("schema"):
            yield from walk(s.additional_properties.schema)
    for d in doc.definitions.additional_properties:
        yield from walk(d.value)


def test_json_form_matches_protobuf(raw):
    status, doc, headers, _ = raw("GET", "/openapi/v2", headers={"Accept": "application/json"})
    assert status == 200 and _ctype(headers) == "application/json"
    assert doc["swagger"] == "2.0"
    op = doc["paths"]["/api/v1/namespaces/{namespace}/replicationcontrollers"]["post"]
    assert op["operationId"] == "createCoreV1NamespacedReplicationController"
    assert op["parameters"][0]["schema"] == \
        {"$ref": "#/definitions/io.k8s.api.core.v1.ReplicationController"}
    pb_doc, _ = _document(raw)
    assert len(pb_doc.paths.path) == len(doc["paths"])
    assert len(pb_doc.definitions.additional_properties) == len(doc["definitions"])


def test_explain_plaintext_openapiv2(server, tmp_path):
    k = Kubectl(server, "1.32", str(tmp_path))
    out = k("explain", "--output=plaintext-openapiv2", "pod.spec")
    assert "RESOURCE: spec <Object>" in out
    assert "Specification of the desired behavior of the pod" in out
    assert "PodSpec is a description of a pod." in out
    assert "containers\t<[]Object> -required-" in out
    out = k("explain", "--output=plaintext-openapiv2", "rc.spec.replicas")
    assert "FIELD:    replicas <integer>" in out
    assert "Replicas is the number of desired replicas." in out


def test_kubectl_120_create_dry_run_server(server, tmp_path):
    k = Kubectl(server, "1.20", str(tmp_path))
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry-cm, namespace: default}\n"
                 "data: {a: '1'}\n")
    out = json.loads(k("create", "--dry-run=server", "-f", str(f), "-o", "json"))
    assert out["metadata"]["name"] == "dry-cm" and out["metadata"]["uid"]
    assert k.run("get", "cm", "dry-cm", "-n", "default", check=False).returncode != 0


def test_apply_list_is_validated_client_side(server, tmp_path):
    k = Kubectl(server, "1.32", str(tmp_path))
    f = tmp_path / "list.yaml"
    item = ("- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: listed-cm, namespace: default}\n"
            "  data: {a: '1'}\n")
    f.write_text("apiVersion: v1\nkind: List\nitems:\n" + item + "  bogus: 1\n")
    p = k.run("apply", "-f", str(f), check=False)
    assert p.returncode != 0
    assert 'unknown field "bogus" in io.k8s.api.core.v1.ConfigMap' in p.stderr
    f.write_text("apiVersion: v1\nkind: List\nitems:\n" + item)
    assert "configmap/listed-cm created" in k("apply", "-f", str(f))
    k("delete", "cm", "listed-cm", "-n", "default")
