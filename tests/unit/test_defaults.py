"""Defaulting of core/v1 objects, compared with what a 1.32 apiserver returns (WIRE-CONTRACT §7, §12)."""
import base64

from shim.resources import defaults as d


def _pod(**spec):
    spec.setdefault("containers", [{"name": "x", "image": "nginx"}])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "namespace": "default", "labels": {"run": "x"}},
            "spec": spec}


def test_minimal_pod_matches_reference_shape():
    pod = d.pod(_pod())
    assert pod["spec"] == {
        "containers": [{"name": "x", "image": "nginx", "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst", "securityContext": {}, "schedulerName": "default-scheduler",
        "enableServiceLinks": True,
    }
    assert d.qos_class(pod) == "BestEffort"


def test_image_pull_policy_by_tag():
    cases = {"nginx": "Always", "nginx:latest": "Always", "nginx:1.25": "IfNotPresent",
             "localhost:5000/app": "Always", "reg.io:5000/app:v1": "IfNotPresent",
             "busybox@sha256:" + "a" * 64: "IfNotPresent", "": "IfNotPresent"}
    for image, policy in cases.items():
        pod = d.pod(_pod(containers=[{"name": "c", "image": image}]))
        assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy, image
    explicit = d.pod(_pod(containers=[{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}]))
    assert explicit["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_container_ports_probes_env_and_resources():
    c = {"name": "c", "image": "i:1",
         "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
         "livenessProbe": {"httpGet": {"port": 80}},
         "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
         "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
         "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}}}
    pod = d.pod(_pod(containers=[c]))
    c = pod["spec"]["containers"][0]
    assert [p["protocol"] for p in c["ports"]] == ["TCP", "UDP"]
    assert c["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                                  "timeoutSeconds": 1, "periodSeconds": 10,
                                  "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["readinessProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert c["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"},
                              "requests": {"cpu": "500m", "memory": "1Gi"}}
    assert d.qos_class(pod) == "Guaranteed"


def test_qos_burstable_when_requests_below_limits():
    c = {"name": "c", "image": "i", "resources": {"requests": {"cpu": "100m"},
                                                  "limits": {"cpu": "1", "memory": "1Gi"}}}
    pod = d.pod(_pod(containers=[c]))
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "1Gi"}
    assert d.qos_class(pod) == "Burstable"


def test_volume_defaults():
    pod = d.pod(_pod(volumes=[
        {"name": "a"},
        {"name": "b", "secret": {"secretName": "s"}},
        {"name": "c", "configMap": {"name": "cm", "defaultMode": 256}},
        {"name": "d", "hostPath": {"path": "/tmp"}},
        {"name": "e", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
    ]))
    vols = pod["spec"]["volumes"]
    assert vols[0] == {"name": "a", "emptyDir": {}}
    assert vols[1]["secret"]["defaultMode"] == 420
    assert vols[2]["configMap"]["defaultMode"] == 256
    assert vols[3]["hostPath"] == {"path": "/tmp", "type": ""}
    assert vols[4]["projected"] == {"sources": [{"serviceAccountToken": {
        "path": "token", "expirationSeconds": 3600}}], "defaultMode": 420}


def test_host_network_copies_container_port_to_host_port():
    pod = d.pod(_pod(hostNetwork=True, containers=[{"name": "c", "image": "i",
                                                      "ports": [{"containerPort": 8080}]}]))
    assert pod["spec"]["containers"][0]["ports"][0]["hostPort"] == 8080


def test_rc_selector_labels_replicas_and_template_defaults():
    rc = {"metadata": {"name": "r", "namespace": "default"},
          "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "nginx",
                                                         "resources": {"limits": {"cpu": "1"}}}]}}}}
    d.replication_controller(rc)
    assert rc["spec"]["selector"] == {"app": "web"}
    assert rc["metadata"]["labels"] == {"app": "web"}
    assert rc["spec"]["replicas"] == 1
    tspec = rc["spec"]["template"]["spec"]
    assert tspec["restartPolicy"] == "Always" and tspec["dnsPolicy"] == "ClusterFirst"
    # Pod-only defaults are not applied to templates.
    assert "enableServiceLinks" not in tspec
    assert "requests" not in tspec["containers"][0]["resources"]


def test_rc_keeps_explicit_selector_and_labels():
    rc = {"metadata": {"name": "r", "labels": {"own": "1"}},
          "spec": {"replicas": 0, "selector": {"app": "x"},
                   "template": {"metadata": {"labels": {"app": "x", "t": "y"}}, "spec": {}}}}
    d.replication_controller(rc)
    assert rc["spec"]["selector"] == {"app": "x"}
    assert rc["metadata"]["labels"] == {"own": "1"}
    assert rc["spec"]["replicas"] == 0


def test_service_cluster_ip_defaults():
    svc = d.service({"spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}})
    assert svc["spec"] == {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                           "selector": {"a": "b"}, "type": "ClusterIP", "sessionAffinity": "None",
                           "internalTrafficPolicy": "Cluster"}


def test_service_nodeport_loadbalancer_externalname():
    np = d.service({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}})
    assert np["spec"]["externalTrafficPolicy"] == "Cluster"
    assert np["spec"]["internalTrafficPolicy"] == "Cluster"
    assert np["spec"]["ports"][0]["targetPort"] == "http"
    lb = d.service({"spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}})
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert lb["spec"]["externalTrafficPolicy"] == "Cluster"
    en = d.service({"spec": {"type": "ExternalName", "externalName": "example.com"}})
    assert "internalTrafficPolicy" not in en["spec"]
    assert "externalTrafficPolicy" not in en["spec"]
    assert en["spec"]["sessionAffinity"] == "None"


def test_service_client_ip_affinity_and_cluster_ips_sync():
    svc = d.service({"spec": {"sessionAffinity": "ClientIP", "clusterIP": "10.96.0.10",
                              "ports": [{"port": 53, "protocol": "UDP"}]}})
    assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert svc["spec"]["clusterIPs"] == ["10.96.0.10"]
    none = d.service({"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}})
    assert "sessionAffinityConfig" not in none["spec"]


def test_secret_string_data_folded_into_data():
    s = d.secret({"metadata": {"name": "s"}, "data": {"a": base64.b64encode(b"old").decode(),
                                                      "b": "Yg=="},
                  "stringData": {"a": "new", "c": "héllo"}})
    assert "stringData" not in s
    assert s["type"] == "Opaque"
    assert base64.b64decode(s["data"]["a"]) == b"new"
    assert s["data"]["b"] == "Yg=="
    assert base64.b64decode(s["data"]["c"]).decode() == "héllo"
    typed = d.secret({"type": "kubernetes.io/tls"})
    assert typed["type"] == "kubernetes.io/tls" and "data" not in typed


def test_namespace_defaults():
    ns = d.namespace({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["x.io/f"]}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["spec"]["finalizers"] == ["x.io/f", "kubernetes"]
    assert ns["status"] == {"phase": "Active"}
    again = d.namespace(ns)
    assert again["spec"]["finalizers"] == ["x.io/f", "kubernetes"]


def test_endpoints_node_quota_limitrange():
    ep = d.endpoints({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"
    node = d.node({"status": {"capacity": {"cpu": "2", "memory": "4096Mi"}}})
    assert node["status"]["allocatable"] == {"cpu": "2", "memory": "4Gi"}
    rq = d.resource_quota({"spec": {"hard": {"requests.cpu": "0.5", "pods": "10"}}})
    assert rq["spec"]["hard"] == {"requests.cpu": "500m", "pods": "10"}
    lr = d.limit_range({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"},
                                             "min": {"memory": "64Mi"}}]}})
    item = lr["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
