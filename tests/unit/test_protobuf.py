"""shim.api.protobuf: real kubectl 1.32 protobuf bodies and hand-built messages -> JSON dicts."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shim.api import protobuf
from shim.api.errors import StatusError
from shim.api.proto import (authorization_v1_pb2, autoscaling_v1_pb2, coordination_v1_pb2,
                            core_v1_pb2, meta_v1_pb2, policy_v1_pb2, runtime_pb2)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "protobuf"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.bin").read_bytes()


def wrap(api_version: str, kind: str, msg) -> bytes:
    unk = runtime_pb2.Unknown(raw=msg.SerializeToString())
    unk.typeMeta.apiVersion = api_version
    unk.typeMeta.kind = kind
    return protobuf.MAGIC + unk.SerializeToString()


def roundtrip(api_version: str, kind: str, msg) -> dict:
    return protobuf.decode(wrap(api_version, kind, msg))


def status_error(body: bytes) -> StatusError:
    with pytest.raises(StatusError) as info:
        protobuf.decode(body)
    assert info.value.code == 400 and info.value.reason == "BadRequest"
    return info.value


# ---- real bodies captured from kubectl (tests/fixtures/protobuf/capture.py) -----------------

DRY_RUN_PAIRS = ["namespace", "secret", "configmap", "quota", "quota_scoped", "service",
                 "service_nodeport", "service_externalname", "serviceaccount"]


@pytest.mark.parametrize("name", DRY_RUN_PAIRS)
def test_kubectl_create_bodies_equal_kubectl_json(name):
    """The protobuf body decodes to exactly what kubectl's Go JSON encoder prints for it."""
    assert (FIXTURES / f"{name}.content-type").read_text().strip() == protobuf.CONTENT_TYPE
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert protobuf.decode(fixture(name)) == expected


def test_kubectl_create_namespace_exact():
    assert protobuf.decode(fixture("namespace")) == {
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": "x", "creationTimestamp": None}, "spec": {}, "status": {}}


def test_kubectl_create_secret_bytes_are_base64():
    obj = protobuf.decode(fixture("secret"))
    assert obj == {"kind": "Secret", "apiVersion": "v1",
                   "metadata": {"name": "s", "creationTimestamp": None}, "data": {"a": "Yg=="}}


def test_kubectl_create_quota_quantities_are_strings():
    obj = protobuf.decode(fixture("quota_scoped"))
    assert obj["spec"] == {"hard": {"pods": "5", "requests.memory": "1Gi"}, "scopes": ["BestEffort"]}
    assert obj["status"] == {}


def test_kubectl_create_service_intorstring_and_ints():
    obj = protobuf.decode(fixture("service_nodeport"))
    assert obj["spec"]["ports"] == [{"name": "5678-8080", "protocol": "TCP", "port": 5678,
                                     "targetPort": 8080, "nodePort": 30080}]
    assert obj["spec"]["type"] == "NodePort"
    assert obj["status"] == {"loadBalancer": {}}


def test_kubectl_auth_can_i():
    assert protobuf.decode(fixture("can_i")) == {
        "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}},
        "status": {"allowed": False}}  # `allowed` has no omitempty: kept although false


def test_kubectl_auth_can_i_subresource_and_list():
    ssar = protobuf.decode(fixture("can_i_subresource"))
    assert ssar["spec"]["resourceAttributes"] == {
        "namespace": "kube-system", "verb": "get", "resource": "pods", "subresource": "log"}
    ssrr = protobuf.decode(fixture("can_i_list"))
    assert ssrr["kind"] == "SelfSubjectRulesReview"
    assert ssrr["spec"] == {"namespace": "default"}
    assert ssrr["status"] == {"incomplete": False}


def test_kubectl_create_token():
    assert protobuf.decode(fixture("token")) == {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None}, "spec": {"expirationSeconds": 3600},
        "status": {"token": "", "expirationTimestamp": None}}
    bound = protobuf.decode(fixture("token_bound"))
    assert bound["spec"] == {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p",
                                                "uid": "0d2c5f6c-1111-2222-3333-444455556666"}}


def test_kubectl_auth_whoami():
    assert protobuf.decode(fixture("whoami")) == {
        "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None}, "status": {"userInfo": {}}}


def test_kubectl_delete_sends_json_not_protobuf():
    """kubectl delete goes through the dynamic client: its DeleteOptions body is JSON."""
    assert (FIXTURES / "delete_secret.content-type").read_text().strip() == "application/json"
    assert not protobuf.is_protobuf("application/json")
    assert json.loads(fixture("delete_secret")) == {"propagationPolicy": "Background"}


def test_kubectl_debug_node_pod():
    pod = protobuf.decode(fixture("debug_node"))
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1"
    assert pod["metadata"]["name"].startswith("node-debugger-n1-")
    assert pod["metadata"]["creationTimestamp"] is None
    assert pod["spec"] == {
        "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],   # inline VolumeSource
        "containers": [{"name": "debugger", "image": "busybox:1.36", "resources": {},
                        "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
                        "terminationMessagePolicy": "File"}],
        "restartPolicy": "Never", "nodeName": "n1", "hostNetwork": True, "hostPID": True,
        "hostIPC": True, "tolerations": [{"operator": "Exists"}]}
    assert pod["status"] == {}


def test_kubectl_drain_delete_options_are_protobuf_eviction_is_json():
    """drain's typed pod DELETE carries protobuf DeleteOptions; its Eviction POST is JSON."""
    assert (FIXTURES / "drain_delete.content-type").read_text().strip() == protobuf.CONTENT_TYPE
    assert protobuf.decode(fixture("drain_delete")) == {
        "kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 7}
    assert (FIXTURES / "drain_eviction.content-type").read_text().strip() == "application/json"
    assert json.loads(fixture("drain_eviction"))["deleteOptions"] == {"gracePeriodSeconds": 7}


# ---- hand-built messages: tricky types and Go zero/pointer semantics ------------------------

def test_delete_options_pointer_zeroes_are_kept():
    opts = meta_v1_pb2.DeleteOptions(gracePeriodSeconds=0, orphanDependents=False,
                                     propagationPolicy="Foreground", dryRun=["All"])
    opts.preconditions.uid = "u-1"
    assert roundtrip("v1", "DeleteOptions", opts) == {
        "kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
        "orphanDependents": False, "propagationPolicy": "Foreground", "dryRun": ["All"],
        "preconditions": {"uid": "u-1"}}


@pytest.mark.parametrize("api_version", ["meta.k8s.io/v1", "authorization.k8s.io/v1", "policy/v1"])
def test_delete_options_in_every_group_version(api_version):
    obj = roundtrip(api_version, "DeleteOptions", meta_v1_pb2.DeleteOptions())
    assert obj == {"kind": "DeleteOptions", "apiVersion": api_version}


def test_pod_roundtrip():
    pod = core_v1_pb2.Pod()
    pod.metadata.name = "web"
    pod.metadata.namespace = ""              # non-pointer omitempty: zero dropped
    pod.metadata.generation = 0              # idem
    pod.metadata.labels["app"] = "web"
    pod.metadata.creationTimestamp.seconds = 1714557600   # 2024-05-01T10:00:00Z
    pod.metadata.creationTimestamp.nanos = 999_000_000    # Time JSON has second precision
    pod.metadata.deletionGracePeriodSeconds = 0           # pointer: kept
    ref = pod.metadata.ownerReferences.add(apiVersion="v1", kind="ReplicationController",
                                           name="rc", uid="u", controller=True)
    ref.blockOwnerDeletion = False
    mf = pod.metadata.managedFields.add(manager="kubectl", operation="Update", fieldsType="FieldsV1")
    mf.time.seconds = 1714557600
    mf.fieldsV1.Raw = b'{"f:metadata":{"f:labels":{".":{}}}}'
    spec = pod.spec
    spec.terminationGracePeriodSeconds = 0
    spec.restartPolicy = "Always"
    spec.automountServiceAccountToken = False
    c = spec.containers.add(name="app", image="nginx")
    c.ports.add(containerPort=80, protocol="TCP")
    c.resources.limits["cpu"].string = "500m"
    c.resources.requests["memory"].string = "64Mi"
    c.readinessProbe.handler.httpGet.path = "/healthz"
    c.readinessProbe.handler.httpGet.port.type = 1
    c.readinessProbe.handler.httpGet.port.strVal = "http"
    c.readinessProbe.periodSeconds = 5
    c.livenessProbe.handler.tcpSocket.port.intVal = 8080
    c.env.add(name="A", value="")           # EnvVar.value is omitempty
    c.securityContext.privileged = False
    v = spec.volumes.add(name="cfg")
    v.volumeSource.configMap.localObjectReference.name = "c"  # inline in Go
    v.volumeSource.configMap.defaultMode = 0o644
    e = spec.volumes.add(name="tmp")
    e.volumeSource.emptyDir.sizeLimit.string = "1Gi"
    obj = roundtrip("v1", "Pod", pod)
    assert obj["metadata"] == {
        "name": "web", "labels": {"app": "web"}, "creationTimestamp": "2024-05-01T10:00:00Z",
        "deletionGracePeriodSeconds": 0,
        "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController", "name": "rc",
                             "uid": "u", "controller": True, "blockOwnerDeletion": False}],
        "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                           "time": "2024-05-01T10:00:00Z",
                           "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]}
    assert obj["spec"]["terminationGracePeriodSeconds"] == 0
    assert obj["spec"]["automountServiceAccountToken"] is False
    assert obj["spec"]["restartPolicy"] == "Always"
    assert obj["spec"]["volumes"] == [
        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}},   # inline VolumeSource
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert obj["spec"]["containers"] == [{
        "name": "app", "image": "nginx",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "A"}],
        "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": 8080}},
        "securityContext": {"privileged": False}}]
    assert obj["status"] == {}


def test_non_omitempty_fields_missing_from_wire_get_go_zero_values():
    """A non-gogo encoder may skip zero fields; Go would decode zero and JSON-encode it anyway."""
    svc = core_v1_pb2.Service()
    svc.spec.ports.add()  # ServicePort.port has no omitempty; targetPort is a non-pointer struct
    obj = roundtrip("v1", "Service", svc)
    assert obj["metadata"] == {"creationTimestamp": None}
    assert obj["spec"] == {"ports": [{"port": 0, "targetPort": 0}]}
    assert obj["status"] == {"loadBalancer": {}}


def test_rc_pointer_replicas_zero_kept_scale_value_zero_dropped():
    rc = core_v1_pb2.ReplicationController()
    rc.spec.replicas = 0
    rc.spec.minReadySeconds = 0
    rc.spec.selector["app"] = "x"
    assert roundtrip("v1", "ReplicationController", rc)["spec"] == {
        "replicas": 0, "selector": {"app": "x"}}
    scale = autoscaling_v1_pb2.Scale()
    scale.spec.replicas = 0  # ScaleSpec.Replicas is int32 with omitempty
    scale.status.replicas = 3
    obj = roundtrip("autoscaling/v1", "Scale", scale)
    assert obj["spec"] == {} and obj["status"] == {"replicas": 3}


def test_bytes_maps_and_invalid_utf8():
    secret = core_v1_pb2.Secret(type="Opaque", immutable=False)
    secret.data["bin"] = b"\x00\xffhi"
    secret.stringData["plain"] = "text"
    obj = roundtrip("v1", "Secret", secret)
    assert obj["data"] == {"bin": base64.b64encode(b"\x00\xffhi").decode()}
    assert obj["stringData"] == {"plain": "text"}
    assert obj["type"] == "Opaque" and obj["immutable"] is False
    cm = core_v1_pb2.ConfigMap()
    cm.binaryData["b"] = b"\x01\x02"
    cm.metadata.ParseFromString(b"\x0a\x02\xff\xfe")  # name with invalid UTF-8
    obj = roundtrip("v1", "ConfigMap", cm)
    assert obj["binaryData"] == {"b": "AQI="}
    assert obj["metadata"]["name"] == "\ufffd\ufffd"


def test_event_micro_time_and_lease():
    ev = core_v1_pb2.Event(reason="Started", type="Normal", count=1)
    ev.involvedObject.kind = "Pod"
    ev.firstTimestamp.seconds = 1714557600
    ev.eventTime.seconds = 1714557600
    ev.eventTime.nanos = 123_456_789
    ev.series.count = 2
    ev.series.lastObservedTime.seconds = 1714557601
    obj = roundtrip("v1", "Event", ev)
    assert obj["eventTime"] == "2024-05-01T10:00:00.123456Z"
    assert obj["firstTimestamp"] == "2024-05-01T10:00:00Z"
    assert obj["lastTimestamp"] is None  # non-pointer zero Time: JSON null
    assert obj["series"] == {"count": 2, "lastObservedTime": "2024-05-01T10:00:01.000000Z"}
    assert obj["involvedObject"] == {"kind": "Pod"}
    lease = coordination_v1_pb2.Lease()
    lease.spec.holderIdentity = "node-1"
    lease.spec.leaseDurationSeconds = 40
    lease.spec.renewTime.seconds = 1714557600
    assert roundtrip("coordination.k8s.io/v1", "Lease", lease)["spec"] == {
        "holderIdentity": "node-1", "leaseDurationSeconds": 40,
        "renewTime": "2024-05-01T10:00:00.000000Z"}


def test_subject_access_review_extra_values_are_lists():
    sar = authorization_v1_pb2.SubjectAccessReview()
    sar.spec.user = "alice"
    sar.spec.groups.extend(["dev", "ops"])
    sar.spec.extra["scopes"].items.extend(["a", "b"])
    sar.spec.nonResourceAttributes.path = "/healthz"
    sar.spec.nonResourceAttributes.verb = "get"
    obj = roundtrip("authorization.k8s.io/v1", "SubjectAccessReview", sar)
    assert obj["spec"] == {"user": "alice", "groups": ["dev", "ops"],
                           "extra": {"scopes": ["a", "b"]},
                           "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}


def test_eviction_embeds_delete_options():
    ev = policy_v1_pb2.Eviction()
    ev.metadata.name = "p"
    ev.metadata.namespace = "default"
    ev.deleteOptions.gracePeriodSeconds = 30
    assert roundtrip("policy/v1", "Eviction", ev) == {
        "kind": "Eviction", "apiVersion": "policy/v1",
        "metadata": {"name": "p", "namespace": "default", "creationTimestamp": None},
        "deleteOptions": {"gracePeriodSeconds": 30}}


def test_node_and_binding():
    node = core_v1_pb2.Node()
    node.spec.unschedulable = False  # omitempty bool: dropped
    node.status.capacity["cpu"].string = "4"
    node.status.addresses.add(type="InternalIP", address="10.0.0.1")
    obj = roundtrip("v1", "Node", node)
    assert obj["spec"] == {}
    assert obj["status"]["capacity"] == {"cpu": "4"}
    assert obj["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.1"}]
    binding = core_v1_pb2.Binding()
    binding.metadata.name = "p"
    binding.target.kind = "Node"
    binding.target.name = "n1"
    assert roundtrip("v1", "Binding", binding)["target"] == {"kind": "Node", "name": "n1"}


@pytest.mark.parametrize("ns,text", [(0, "0s"), (1, "1ns"), (1500, "1.5µs"), (2_000_000, "2ms"),
                                     (1_500_000_000, "1.5s"), (90 * 10**9, "1m30s"),
                                     (3_723_500_000_000, "1h2m3.5s"), (-10**9, "-1s")])
def test_go_duration(ns, text):
    assert protobuf.go_duration(ns) == text


# ---- errors ---------------------------------------------------------------------------------

def test_missing_prefix_and_empty_bodies():
    assert status_error(b"").message == "empty data"
    assert status_error(b'{"kind":"Pod"}').message == (
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    assert status_error(protobuf.MAGIC).message == "empty body"


def test_malformed_protobuf():
    body = fixture("namespace")
    assert "truncated or corrupt" in status_error(body[:-3]).message
    # envelope intact, object bytes corrupt (a length running past the end)
    unk = runtime_pb2.Unknown(raw=b"\x0a\x7f\x0a")
    unk.typeMeta.apiVersion, unk.typeMeta.kind = "v1", "Namespace"
    assert "Namespace" in status_error(protobuf.MAGIC + unk.SerializeToString()).message


def test_unknown_kind_and_version():
    err = status_error(wrap("v1", "Foo", core_v1_pb2.Pod()))
    assert err.message == ('no kind "Foo" is registered for version "v1" '
                           'in scheme "pkg/api/legacyscheme/scheme.go:30"')
    err = status_error(wrap("apps/v1", "Deployment", core_v1_pb2.Pod()))
    assert err.message.startswith('no kind "Deployment" is registered for version "apps/v1"')


def test_missing_kind_or_version():
    err = status_error(wrap("v1", "", core_v1_pb2.Pod()))
    assert err.message == ("Object 'Kind' is missing in "
                           "'runtime.TypeMeta{APIVersion:\"v1\", Kind:\"\"}'")
    err = status_error(wrap("", "Pod", core_v1_pb2.Pod()))
    assert err.message.startswith("Object 'apiVersion' is missing in")


def test_is_protobuf():
    assert protobuf.is_protobuf("application/vnd.kubernetes.protobuf")
    assert protobuf.is_protobuf("application/vnd.kubernetes.protobuf; charset=binary")
    assert not protobuf.is_protobuf("application/vnd.kubernetes.protobuf;stream=watch".replace(
        "protobuf", "json"))
    assert not protobuf.is_protobuf(None)
