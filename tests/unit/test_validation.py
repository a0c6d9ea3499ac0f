"""Validation messages, checked as the exact str() a 1.32 apiserver puts in its 422 bodies."""
import base64
import copy

from shim.api.errors import invalid
from shim.resources import defaults as d
from shim.resources import validation as v

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
               "with an alphabetic character, and end with an alphanumeric character (e.g. "
               "'my-name',  or 'abc-123', regex used for validation is "
               "'[a-z]([-a-z0-9]*[a-z0-9])?')")
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                  "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                  "is '[-._a-zA-Z0-9]+')")


def strs(errs):
    return [str(e) for e in errs]


def make_pod(name="x", **spec):
    spec.setdefault("containers", [{"name": "c", "image": "nginx"}])
    return d.pod({"metadata": {"name": name, "namespace": "default"}, "spec": spec})


# ---- name rules ------------------------------------------------------------------------------

def test_name_rule_messages():
    assert v.is_dns1123_subdomain("Bad_Name") == [SUBDOMAIN_MSG]
    assert v.is_dns1123_subdomain("a.b-c") == []
    assert v.is_dns1123_label("a.b") == [LABEL_MSG]
    assert v.is_dns1035_label("1abc") == [DNS1035_MSG]
    assert v.is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    assert v.is_valid_port_num(0) == ["must be between 1 and 65535, inclusive"]
    assert v.is_valid_port_num(65535) == []
    assert v.is_valid_port_name("-Http--") == [
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        "must not contain consecutive hyphens", "must not begin or end with a hyphen"]
    assert v.is_valid_port_name("1234") == ["must contain at least one letter (a-z)"]
    assert v.is_config_map_key("..a") == ["must not start with '..'"]
    assert v.is_config_map_key("bad key") == [CONFIG_KEY_MSG]


def test_qualified_name_and_label_value_messages():
    assert v.is_qualified_name("example.com/my-app") == []
    assert v.is_qualified_name("/x") == ["prefix part must be non-empty"]
    assert v.is_qualified_name("a/b/c") == [
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    assert v.is_qualified_name("-bad") == [
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
        "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]
    assert v.is_valid_label_value("") == []
    assert v.is_valid_label_value("a b") == [
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
        "'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    assert v.is_env_var_name("MY-VAR.1") == []
    assert v.is_env_var_name("A=B") == [
        "a valid environment variable name must consist only of printable ASCII characters "
        "other than '='"]


# ---- metadata --------------------------------------------------------------------------------

def test_object_meta_create():
    assert strs(v.object_meta({"namespace": "default"}, namespaced=True)) == [
        "metadata.name: Required value: name or generateName is required"]
    assert strs(v.object_meta({"name": "Bad_Name", "namespace": "default"}, namespaced=True)) == [
        f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']
    assert strs(v.object_meta({"generateName": "web-", "name": "web-abcde", "namespace": "d"},
                              namespaced=True)) == []
    assert strs(v.object_meta({"name": "n"}, namespaced=True)) == ["metadata.namespace: Required value"]
    assert strs(v.object_meta({"name": "n", "namespace": "x"}, namespaced=False)) == [
        "metadata.namespace: Forbidden: not allowed on this type"]


def test_object_meta_labels_annotations_finalizers_owners():
    meta = {"name": "n", "namespace": "d", "labels": {"ok": "a b"},
            "annotations": {"big": "x" * (256 * 1024)},
            "finalizers": ["custom"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ReplicationController", "name": "a", "uid": "1",
                 "controller": True},
                {"apiVersion": "", "kind": "ReplicationController", "name": "b", "uid": "",
                 "controller": True}]}
    got = strs(v.object_meta(meta, namespaced=True))
    assert got[0].startswith('metadata.labels: Invalid value: "a b": a valid label must be')
    assert got[1] == "metadata.annotations: Too long: may not be more than 262144 bytes"
    assert got[2] == 'metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty'
    assert got[3] == 'metadata.ownerReferences.uid: Invalid value: "": must not be empty'
    assert got[4].startswith("metadata.ownerReferences: Invalid value: [")
    assert got[4].endswith(": Only one reference can have Controller set to true. Found \"true\" "
                           "in references for ReplicationController/a and ReplicationController/b")
    assert got[5] == ('metadata.finalizers[0]: Invalid value: "custom": name is neither a '
                      'standard finalizer name nor is it fully qualified')
    assert len(got) == 6


def test_object_meta_update_immutables_and_finalizers():
    old = {"name": "a", "namespace": "d", "uid": "u1", "resourceVersion": "5",
           "creationTimestamp": "2024-05-01T10:00:00Z", "deletionTimestamp": "2024-05-01T11:00:00Z",
           "finalizers": ["x.io/a"]}
    new = dict(old, name="b", uid="u2", finalizers=["x.io/a", "x.io/b"])
    assert strs(v.object_meta_update(new, old)) == [
        'metadata.finalizers: Forbidden: no new finalizers can be added if the object is being '
        'deleted, found new finalizers []string{"x.io/b"}',
        'metadata.name: Invalid value: "b": field is immutable',
        'metadata.uid: Invalid value: "u2": field is immutable']
    assert strs(v.object_meta_update(dict(old, resourceVersion=""), old)) == [
        'metadata.resourceVersion: Invalid value: "": must be specified for an update']


# ---- pods ------------------------------------------------------------------------------------

def test_valid_pod_has_no_errors():
    pod = make_pod(containers=[{"name": "web", "image": "nginx:1.25",
                                "ports": [{"name": "http", "containerPort": 80}],
                                "env": [{"name": "A", "value": "1"}],
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                                "livenessProbe": {"httpGet": {"port": "http"}},
                                "resources": {"requests": {"cpu": "100m"},
                                              "limits": {"cpu": "1", "memory": "128Mi"}}}],
                   volumes=[{"name": "data"}])
    assert v.pod(pod) == []


def test_pod_requires_containers_and_image():
    pod = make_pod(containers=[])
    assert strs(v.pod(pod)) == ["spec.containers: Required value"]
    pod = make_pod(containers=[{"name": "c"}])
    err = invalid("Pod", "x", v.pod(pod))
    assert err.message == 'Pod "x" is invalid: spec.containers[0].image: Required value'
    assert err.details["causes"] == [{"reason": "FieldValueRequired", "message": "Required value",
                                      "field": "spec.containers[0].image"}]


def test_pod_container_names_ports_and_protocols():
    pod = make_pod(containers=[
        {"name": "Web", "image": "i"},
        {"name": "db", "image": "i", "ports": [{"containerPort": 70000, "protocol": "HTTP"}]},
        {"name": "db", "image": "i"}])
    assert strs(v.pod(pod)) == [
        f'spec.containers[0].name: Invalid value: "Web": {LABEL_MSG}',
        "spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and "
        "65535, inclusive",
        'spec.containers[1].ports[0].protocol: Unsupported value: "HTTP": supported values: '
        '"SCTP", "TCP", "UDP"',
        'spec.containers[2].name: Duplicate value: "db"']


def test_pod_restart_and_dns_policy_values():
    pod = make_pod(restartPolicy="Sometimes", dnsPolicy="Nope")
    assert strs(v.pod(pod)) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"',
        'spec.dnsPolicy: Unsupported value: "Nope": supported values: "ClusterFirstWithHostNet", '
        '"ClusterFirst", "Default", "None"']


def test_pod_volumes_unique_one_source_and_mounts():
    pod = make_pod(volumes=[{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}},
                            {"name": "b", "emptyDir": {}, "secret": {"secretName": "s"}}],
                   containers=[{"name": "c", "image": "i",
                                "volumeMounts": [{"name": "zz", "mountPath": "/x"}]}])
    assert strs(v.pod(pod)) == [
        'spec.volumes[1].name: Duplicate value: "a"',
        "spec.volumes[2].secret: Forbidden: may not specify more than 1 volume type",
        'spec.containers[0].volumeMounts[0].name: Not found: "zz"']


def test_pod_env_and_probe_handlers():
    pod = make_pod(containers=[{
        "name": "c", "image": "i",
        "env": [{"name": ""}, {"name": "X", "value": "v", "valueFrom": {"secretKeyRef": {
            "name": "s", "key": "k"}}}],
        "livenessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
        "readinessProbe": {"periodSeconds": 3}}])
    assert strs(v.pod(pod)) == [
        "spec.containers[0].env[0].name: Required value",
        'spec.containers[0].env[1].valueFrom: Invalid value: "": may not be specified when '
        '`value` is not empty',
        "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 "
        "handler type",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type"]


def test_pod_resources_quantities():
    pod = make_pod(containers=[{"name": "c", "image": "i", "resources": {
        "limits": {"cpu": "1"}, "requests": {"cpu": "2", "memory": "-1"}}}])
    got = strs(v.pod(pod))
    assert 'spec.containers[0].resources.requests: Invalid value: "2": must be less than or ' \
           'equal to cpu limit of 1' in got
    assert 'spec.containers[0].resources.requests[memory]: Invalid value: "-1": must be greater ' \
           'than or equal to 0' in got
    bad_name = make_pod(containers=[{"name": "c", "image": "i", "resources": {"limits": {"gpu": "1"}}}])
    # requests were defaulted from limits, so the bad name is reported for both maps
    assert strs(v.pod(bad_name)) == [
        f'spec.containers[0].resources.{kind}[gpu]: Invalid value: "gpu": must be a standard '
        f'resource {what}' for kind in ("limits", "requests")
        for what in ("type or fully qualified", "for containers")]


def test_pod_update_only_image_may_change():
    old = make_pod()
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:2"
    new["metadata"]["labels"] = {"x": "y"}
    assert v.pod_update(new, old) == []
    new["spec"]["restartPolicy"] = "Never"
    errs = v.pod_update(new, old)
    assert len(errs) == 1
    text = str(errs[0])
    first_line = text.split("\n")[0]
    assert first_line == (
        "spec: Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
        "negative)")
    assert '- \tRestartPolicy: "Always",' in text and '+ \tRestartPolicy: "Never",' in text


def test_pod_update_containers_tolerations_deadline():
    old = make_pod(tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                   activeDeadlineSeconds=100)
    old["metadata"]["resourceVersion"] = "1"
    added = copy.deepcopy(old)
    added["spec"]["tolerations"].append({"key": "k2", "operator": "Exists"})
    added["spec"]["activeDeadlineSeconds"] = 50
    assert v.pod_update(added, old) == []
    removed = copy.deepcopy(old)
    removed["spec"]["tolerations"] = []
    assert strs(v.pod_update(removed, old)) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its "
        "tolerationSeconds"]
    longer = copy.deepcopy(old)
    longer["spec"]["activeDeadlineSeconds"] = 200
    assert strs(v.pod_update(longer, old)) == [
        "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]
    more = copy.deepcopy(old)
    more["spec"]["containers"].append({"name": "d", "image": "i"})
    d.pod(more)
    assert "spec.containers: Forbidden: pod updates may not add or remove containers" in strs(
        v.pod_update(more, old))


def test_pod_status_update():
    old = make_pod(nodeName="n1")
    old["metadata"]["resourceVersion"] = "1"
    old["status"] = {"qosClass": "BestEffort"}
    new = copy.deepcopy(old)
    new["spec"]["nodeName"] = "n2"
    new["status"]["qosClass"] = "Burstable"
    assert strs(v.pod_status_update(new, old)) == [
        "status.nodeName: Forbidden: may not be changed directly",
        'status.qosClass: Invalid value: "Burstable": field is immutable']


# ---- replication controllers -------------------------------------------------------------------

def make_rc(selector=None, labels=None, **tspec):
    tspec.setdefault("containers", [{"name": "c", "image": "i"}])
    rc = {"metadata": {"name": "r", "namespace": "default"},
          "spec": {"template": {"metadata": {"labels": labels or {"app": "web"}}, "spec": tspec}}}
    if selector is not None:
        rc["spec"]["selector"] = selector
    return d.replication_controller(rc)


def test_rc_valid_and_selector_mismatch():
    assert v.replication_controller(make_rc()) == []
    rc = make_rc(selector={"app": "other"}, labels={"b": "2", "app": "web"}, restartPolicy="OnFailure")
    assert strs(v.replication_controller(rc)) == [
        'spec.template.metadata.labels: Invalid value: {"app":"web","b":"2"}: `selector` does '
        'not match template `labels`',
        'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: '
        '"Always"']


def test_rc_negative_replicas_and_update():
    rc = make_rc()
    rc["spec"]["replicas"] = -1
    assert strs(v.replication_controller(rc)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
    old = make_rc()
    old["metadata"]["resourceVersion"] = "3"
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    assert v.replication_controller_update(new, old) == []


# ---- services ----------------------------------------------------------------------------------

def make_svc(name="web", **spec):
    return d.service({"metadata": {"name": name, "namespace": "default"}, "spec": spec})


def test_service_valid_and_name_rule():
    assert v.service(make_svc(ports=[{"port": 80}], selector={"app": "web"})) == []
    assert strs(v.service(make_svc(name="no-domain.com", ports=[{"port": 80}]))) == [
        f'metadata.name: Invalid value: "no-domain.com": {DNS1035_MSG}']


def test_service_ports_rules():
    assert strs(v.service(make_svc())) == ["spec.ports: Required value"]
    svc = make_svc(ports=[{"port": 80, "name": "http"}, {"port": 0, "protocol": "ICMP"},
                          {"port": 81, "name": "http"}])
    assert strs(v.service(svc)) == [
        "spec.ports[1].name: Required value",
        "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        "spec.ports[1].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[2].name: Duplicate value: "http"']


def test_service_types_and_external_name():
    assert strs(v.service(make_svc(type="Magic", ports=[{"port": 80}]))) == [
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", '
        '"LoadBalancer", "NodePort"']
    assert strs(v.service(make_svc(type="ExternalName"))) == ["spec.externalName: Required value"]
    assert v.service(make_svc(type="ExternalName", externalName="db.example.com.")) == []
    assert v.service(make_svc(clusterIP="None")) == []      # headless needs no ports
    assert strs(v.service(make_svc(type="ClusterIP", ports=[{"port": 80, "nodePort": 30001}]))) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]


def test_service_update_cluster_ip_immutable():
    old = make_svc(ports=[{"port": 80}], clusterIP="10.96.0.5")
    old["metadata"]["resourceVersion"] = "2"
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.6"
    new["spec"]["clusterIPs"] = ["10.96.0.6"]
    assert strs(v.service_update(new, old)) == [
        'spec.clusterIPs[0]: Invalid value: ["10.96.0.6"]: may not change once set']
    same = copy.deepcopy(old)
    same["spec"]["ports"][0]["port"] = 8080
    same["spec"]["ports"][0]["targetPort"] = 8080
    assert v.service_update(same, old) == []


# ---- endpoints ---------------------------------------------------------------------------------

def test_endpoints():
    ep = d.endpoints({"metadata": {"name": "web", "namespace": "default"},
                      "subsets": [{"addresses": [{"ip": "10.1.0.5"}], "ports": [{"port": 80}]},
                                  {"addresses": [{"ip": "127.0.0.1"}, {"ip": "nope"}]},
                                  {"ports": [{"port": 1}]}]})
    assert strs(v.endpoints(ep)) == [
        'subsets[1].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the loopback range '
        '(127.0.0.0/8, ::1/128)',
        'subsets[1].addresses[1].ip: Invalid value: "nope": must be a valid IP address, (e.g. '
        '10.9.8.7 or 2001:db8::ffff)',
        'subsets[1].addresses[1].ip: Invalid value: "nope": must be a valid IP address',
        "subsets[2]: Required value: must specify `addresses` or `notReadyAddresses`"]


# ---- secrets and config maps ---------------------------------------------------------------------

def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def make_secret(**fields):
    obj = {"metadata": {"name": "s", "namespace": "default"}}
    obj.update(fields)
    return d.secret(obj)


def test_secret_keys_size_and_types():
    assert v.secret(make_secret(data={"a.b": b64(b"x")})) == []
    assert strs(v.secret(make_secret(data={"bad key": b64(b"x")}))) == [
        f'data[bad key]: Invalid value: "bad key": {CONFIG_KEY_MSG}']
    big = make_secret(data={"a": b64(b"x" * (1024 * 1024)), "b": b64(b"y")})
    assert strs(v.secret(big)) == ["data: Too long: may not be more than 1048576 bytes"]
    assert strs(v.secret(make_secret(type="kubernetes.io/tls", data={"tls.crt": b64(b"c")}))) == [
        "data[tls.key]: Required value"]
    assert strs(v.secret(make_secret(type="kubernetes.io/dockerconfigjson",
                                     data={".dockerconfigjson": b64(b"{bad")}))) == [
        'data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": invalid '
        "character 'b' looking for beginning of value"]
    assert strs(v.secret(make_secret(type="kubernetes.io/service-account-token"))) == [
        "metadata.annotations[kubernetes.io/service-account.name]: Required value"]


def test_secret_update_type_and_immutable():
    old = make_secret(data={"a": b64(b"1")}, immutable=True)
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["data"] = {"a": b64(b"2")}
    new["type"] = "kubernetes.io/basic-auth"
    new["immutable"] = False
    assert strs(v.secret_update(new, old)) == [
        'type: Invalid value: "kubernetes.io/basic-auth": field is immutable',
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
        "data[username]: Required value",
        "data[password]: Required value"]


def test_config_map_rules():
    cm = {"metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v", "x y": "1"},
          "binaryData": {"k": b64(b"1")}}
    assert strs(v.config_map(cm)) == [
        'data[k]: Invalid value: "k": duplicate of key present in binaryData',
        f'data[x y]: Invalid value: "x y": {CONFIG_KEY_MSG}']
    old = {"metadata": {"name": "c", "namespace": "default", "resourceVersion": "1"},
           "data": {"k": "v"}, "immutable": True}
    new = copy.deepcopy(old)
    new["data"]["k"] = "w"
    assert strs(v.config_map_update(new, old)) == [
        "data: Forbidden: field is immutable when `immutable` is set"]


# ---- quota, namespace, others ----------------------------------------------------------------------

def test_resource_quota():
    rq = d.resource_quota({"metadata": {"name": "q", "namespace": "default"},
                           "spec": {"hard": {"pods": "1.5", "requests.cpu": "-1", "foo": "1"}}})
    assert strs(v.resource_quota(rq)) == [
        'spec.hard[pods]: Invalid value: "1500m": must be an integer',
        'spec.hard[requests.cpu]: Invalid value: "-1": must be greater than or equal to 0',
        'spec.hard[foo]: Invalid value: "foo": must be a standard resource type or fully qualified',
        'spec.hard[foo]: Invalid value: "foo": must be a standard resource for quota']
    ok = d.resource_quota({"metadata": {"name": "q", "namespace": "default"},
                           "spec": {"hard": {"pods": "10", "count/secrets": "5", "limits.memory": "1Gi"}}})
    assert v.resource_quota(ok) == []


def test_namespace_and_others():
    ns = d.namespace({"metadata": {"name": "Team"}})
    got = strs(v.namespace(ns))
    assert got[0] == f'metadata.name: Invalid value: "Team": {LABEL_MSG}'
    assert got[1:] == []          # "Team" is a valid label value for kubernetes.io/metadata.name
    assert strs(v.namespace({"metadata": {"name": "n"}, "spec": {"finalizers": ["bogus"]}})) == [
        'spec.finalizers: Invalid value: "bogus": name is neither a standard finalizer name nor '
        'is it fully qualified']
    assert v.namespace(d.namespace({"metadata": {"name": "team-a"}})) == []
    assert v.service_account({"metadata": {"name": "default", "namespace": "d"}}) == []
    assert v.node(d.node({"metadata": {"name": "node-1"},
                          "status": {"capacity": {"cpu": "2", "pods": "110"}}})) == []
    ev = {"metadata": {"name": "x.123", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "namespace": "other", "name": "p"}, "reason": "R"}
    assert strs(v.event(ev)) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace']
    ev["involvedObject"]["namespace"] = "default"
    assert v.event(ev) == []


def test_limit_range():
    lr = d.limit_range({"metadata": {"name": "l", "namespace": "default"},
                        "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"},
                                             "max": {"cpu": "1"}}]}})
    got = strs(v.limit_range(lr))
    assert 'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1' in got


def test_decode_errors_are_400_messages():
    pod = {"spec": {"containers": [{"resources": {"limits": {"cpu": "1.2.3"}}}]}}
    assert v.decode_error("Pod", pod) == (
        'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular '
        "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    assert v.decode_error("Secret", {"data": {"a": "%%%"}}) == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0')
    assert v.decode_error("Secret", {"data": {"a": "YQ=="}}) is None
    assert v.decode_error("ResourceQuota", {"spec": {"hard": {"pods": "ten"}}}).endswith(
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
