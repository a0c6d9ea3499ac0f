"""OpenAPI v3/v2 documents: shape kubectl relies on, hashes, HTTP answers."""
from __future__ import annotations

import hashlib

import orjson
import pytest

from shim.openapi import builder, components, v2
from shim.openapi.builder import APIResource, build_v3

ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS = ["get", "patch", "update"]


def served() -> list[APIResource]:
    return [
        APIResource("", "v1", "pods", "Pod", True, ALL, {
            "status": ("Pod", "", "v1", STATUS),
            "binding": ("Binding", "", "v1", ["create"]),
            "eviction": ("Eviction", "policy", "v1", ["create"]),
            "log": ("Pod", "", "v1", ["get"]),
            "exec": ("PodExecOptions", "", "v1", ["create", "get"])}),
        APIResource("", "v1", "replicationcontrollers", "ReplicationController", True, ALL, {
            "status": ("ReplicationController", "", "v1", STATUS),
            "scale": ("Scale", "autoscaling", "v1", STATUS)}),
        APIResource("", "v1", "services", "Service", True, ALL, {"status": ("Service", "", "v1", STATUS)}),
        APIResource("", "v1", "namespaces", "Namespace", False,
                    ["create", "delete", "get", "list", "patch", "update", "watch"],
                    {"status": ("Namespace", "", "v1", STATUS), "finalize": ("Namespace", "", "v1", ["update"])}),
        APIResource("", "v1", "secrets", "Secret", True, ALL),
        APIResource("", "v1", "endpoints", "Endpoints", True, ALL),
        APIResource("", "v1", "resourcequotas", "ResourceQuota", True, ALL,
                    {"status": ("ResourceQuota", "", "v1", STATUS)}),
        APIResource("", "v1", "configmaps", "ConfigMap", True, ALL),
        APIResource("", "v1", "nodes", "Node", False, ALL, {"status": ("Node", "", "v1", STATUS)}),
        APIResource("coordination.k8s.io", "v1", "leases", "Lease", True, ALL),
    ]


@pytest.fixture(scope="module")
def docs():
    return build_v3(served())


@pytest.fixture(scope="module")
def core(docs):
    data, _ = docs.group_version("api/v1")
    return orjson.loads(data)


def _patch_supports(doc: dict, gvk: dict, param: str) -> bool:
    """What cli-runtime's query_param_verifier_v3 does: PATCH op with this GVK and the param."""
    for item in doc["paths"].values():
        op = item.get("patch")
        if not op or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        if any(p["name"] == param and p["in"] == "query" for p in op.get("parameters", [])):
            return True
    return False


def test_root_lists_each_group_version_with_its_hash(docs):
    root = orjson.loads(docs.root())
    assert set(root["paths"]) == {"api/v1", "apis/coordination.k8s.io/v1"}
    data, digest = docs.group_version("api/v1")
    assert root["paths"]["api/v1"]["serverRelativeURL"] == f"/openapi/v3/api/v1?hash={digest}"
    assert digest == hashlib.sha512(data).hexdigest().upper()
    assert docs.group_version("/openapi/v3/api/v1") == (data, digest)
    assert docs.group_version("apis/apps/v1") is None


@pytest.mark.parametrize("kind", ["Pod", "ReplicationController", "Service", "Namespace", "Secret",
                                  "Endpoints", "ResourceQuota", "ConfigMap", "Node"])
def test_every_served_kind_has_patch_with_field_validation(core, kind):
    gvk = {"group": "", "kind": kind, "version": "v1"}
    assert _patch_supports(core, gvk, "fieldValidation")
    assert not _patch_supports(core, {"group": "", "kind": kind, "version": "v2"}, "fieldValidation")


def test_scale_subresource_is_tagged_with_autoscaling_gvk(core):
    op = core["paths"]["/api/v1/namespaces/{namespace}/replicationcontrollers/{name}/scale"]["patch"]
    assert op["operationId"] == "patchCoreV1NamespacedReplicationControllerScale"
    assert op["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale", "version": "v1"}
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"}


def test_pod_item_patch_operation_shape(core):
    item = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]
    op = item["patch"]
    assert op["operationId"] == "patchCoreV1NamespacedPod"
    assert op["tags"] == ["core_v1"]
    assert op["x-kubernetes-action"] == "patch"
    assert [p["name"] for p in op["parameters"]] == ["dryRun", "fieldManager", "fieldValidation", "force"]
    assert op["parameters"][3]["schema"] == {"type": "boolean", "uniqueItems": True}
    assert sorted(op["requestBody"]["content"]) == [
        "application/apply-patch+yaml", "application/json-patch+json",
        "application/merge-patch+json", "application/strategic-merge-patch+json"]
    assert set(op["responses"]) == {"200", "201", "401"}
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    assert item["parameters"][0]["description"] == "name of the Pod"
    assert item["get"]["operationId"] == "readCoreV1NamespacedPod"
    assert item["put"]["operationId"] == "replaceCoreV1NamespacedPod"
    assert item["delete"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "io.k8s.api.core.v1.Pod")


def test_list_paths_namespaced_and_all_namespaces(core):
    coll = core["paths"]["/api/v1/namespaces/{namespace}/pods"]
    assert coll["get"]["operationId"] == "listCoreV1NamespacedPod"
    names = [p["name"] for p in coll["get"]["parameters"]]
    assert names == ["allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
                     "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
                     "watch"]
    assert "application/json;stream=watch" in coll["get"]["responses"]["200"]["content"]
    assert coll["post"]["operationId"] == "createCoreV1NamespacedPod"
    assert coll["delete"]["operationId"] == "deleteCoreV1CollectionNamespacedPod"
    every = core["paths"]["/api/v1/pods"]
    assert every["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    assert "labelSelector" in [p["name"] for p in every["parameters"]]
    assert core["paths"]["/api/v1/watch/namespaces/{namespace}/pods"]["get"]["x-kubernetes-action"] == "watchlist"
    assert "/api/v1/namespaces" in core["paths"] and "/api/v1/nodes" in core["paths"]
    assert "/api/v1/watch/nodes/{name}" in core["paths"]
    assert core["paths"]["/api/v1/nodes"]["get"]["operationId"] == "listCoreV1Node"


def test_connect_binding_log_and_group_operation_ids(docs, core):
    paths = core["paths"]
    assert paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["post"]["operationId"] == \
        "connectCoreV1PostNamespacedPodExec"
    assert paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]["operationId"] == \
        "createCoreV1NamespacedPodBinding"
    log = paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]
    assert log["operationId"] == "readCoreV1NamespacedPodLog"
    assert log["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "string"}
    assert paths["/api/v1/namespaces/{name}/finalize"]["put"]["operationId"] == "replaceCoreV1NamespaceFinalize"
    lease = orjson.loads(docs.group_version("apis/coordination.k8s.io/v1")[0])
    op = lease["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]["patch"]
    assert op["operationId"] == "patchCoordinationV1NamespacedLease"
    assert op["tags"] == ["coordination_v1"]


def test_naming_helpers():
    assert builder.gv_camel("rbac.authorization.k8s.io", "v1") == "RbacAuthorizationV1"
    assert builder.gv_tag("rbac.authorization.k8s.io", "v1") == "rbacAuthorization_v1"
    assert builder.gv_camel("", "v1") == "CoreV1"
    assert builder.gv_path("apps", "v1") == "apis/apps/v1"


def test_component_schemas_are_openapi3_shaped(core):
    schemas = core["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["apiVersion"]["type"] == "string"
    assert "enum" not in pod["properties"]["kind"]
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["format"] == "int-or-string" and ios["oneOf"] == [{"type": "integer"}, {"type": "string"}]
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"] == [
        {"type": "string"}, {"type": "number"}]
    # every $ref resolves inside the document
    text = orjson.dumps(core).decode()
    for name in set(text.split('"#/components/schemas/')[1:]):
        assert name.split('"', 1)[0] in schemas
    assert "io.k8s.api.apps.v1.Deployment" not in schemas
    assert "#/$defs/" not in text


def test_hash_is_stable_and_changes_with_content():
    a = build_v3(served()).group_version("api/v1")[1]
    b = build_v3(served()).group_version("api/v1")[1]
    assert a == b
    fewer = [r for r in served() if r.plural != "secrets"]
    c = build_v3(fewer).group_version("api/v1")[1]
    assert c != a


def test_disk_cache_round_trip(tmp_path):
    first = build_v3(served(), cache_dir=str(tmp_path))
    assert list(tmp_path.iterdir())
    second = build_v3(served(), cache_dir=str(tmp_path))
    assert second.group_version("api/v1") == first.group_version("api/v1")
    assert second.root() == first.root()


def test_serve_group_version_http_semantics(docs):
    data, digest = docs.group_version("api/v1")
    status, headers, body = docs.serve_group_version("/openapi/v3/api/v1", digest, "application/json")
    assert status == 200 and body == data
    assert headers["Cache-Control"] == "public, immutable"
    assert headers["Vary"] == "Accept" and headers["ETag"] == f'"{digest}"'
    assert headers["Expires"].endswith("GMT")
    status, headers, _ = docs.serve_group_version("api/v1", "0BAD", None)
    assert status == 301 and headers["Location"] == f"/openapi/v3/api/v1?hash={digest}"
    status, headers, body = docs.serve_group_version("api/v1", None, "*/*")
    assert status == 200 and "Cache-Control" not in headers and body == data
    status, _, _ = docs.serve_group_version(
        "api/v1", digest, "application/com.github.proto-openapi.spec.v3@v1.0+protobuf")
    assert status == 406
    assert docs.serve_group_version("apis/apps/v1", None, None)[0] == 404


def test_v2_protobuf_is_a_gnostic_document_and_json_has_definitions():
    from shim.openapi.proto import openapiv2_pb2
    status, headers, body = v2.serve_v2(served(), "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert status == 200 and body == v2.v2_protobuf(served())
    assert openapiv2_pb2.Document.FromString(body).swagger == "2.0"
    # Go's mime parser rejects the "@" form, so the response uses the ".v1.0" spelling
    assert headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    doc = orjson.loads(v2.v2_json(served()))
    assert doc["swagger"] == "2.0"
    spec = doc["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"]
    assert spec["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"
    ios = doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios == components.v2_schema("io.k8s.apimachinery.pkg.util.intstr.IntOrString")
    assert (ios["type"], ios["format"]) == ("string", "int-or-string")
