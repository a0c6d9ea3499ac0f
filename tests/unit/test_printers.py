"""Server-side printing: columns and cells must match the 1.32 apiserver printers."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shim.openapi import schema
from shim.resources import printers as p

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


def ago(seconds: float) -> str:
    """RFC 3339 timestamp `seconds` before NOW."""
    dt = datetime.fromtimestamp(NOW - seconds, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name="x", age=300, **extra):
    m = {"name": name, "namespace": "default", "creationTimestamp": ago(age)}
    m.update(extra)
    return m


# ------------------------------------------------------------------ HumanDuration

@pytest.mark.parametrize("seconds,expected", [
    (-5, "<invalid>"),
    (-2, "<invalid>"),
    (-1.5, "0s"),
    (-1, "0s"),
    (-0.5, "0s"),
    (0, "0s"),
    (59, "59s"),
    (119, "119s"),
    (119.9, "119s"),
    (120, "2m"),
    (121, "2m1s"),
    (599, "9m59s"),
    (600, "10m"),
    (601, "10m"),
    (3 * 3600 - 1, "179m"),
    (3 * 3600, "3h"),
    (3 * 3600 + 60, "3h1m"),
    (8 * 3600 - 1, "7h59m"),
    (8 * 3600, "8h"),
    (48 * 3600 - 1, "47h"),
    (48 * 3600, "2d"),
    (49 * 3600, "2d1h"),
    (8 * 86400 - 1, "7d23h"),
    (8 * 86400, "8d"),
    (2 * 365 * 86400 - 1, "729d"),
    (2 * 365 * 86400, "2y"),
    (2 * 365 * 86400 + 86400, "2y1d"),
    (8 * 365 * 86400 - 1, "7y364d"),
    (8 * 365 * 86400, "8y"),
    (20 * 365 * 86400 + 5 * 86400, "20y"),
])
def test_human_duration_bands(seconds, expected):
    assert p.human_duration(seconds) == expected


def test_translate_timestamp_since():
    assert p.translate_timestamp_since(None, NOW) == "<unknown>"
    assert p.translate_timestamp_since("", NOW) == "<unknown>"
    assert p.translate_timestamp_since("0001-01-01T00:00:00Z", NOW) == "<unknown>"
    assert p.translate_timestamp_since(ago(90), NOW) == "90s"
    assert p.translate_timestamp_since(ago(-60), NOW) == "<invalid>"
    assert p.translate_timestamp_since("2024-05-01T11:55:00.500000Z", NOW) == "4m59s"
    assert p.translate_timestamp_since("2024-05-01T13:00:00+02:00", NOW) == "60m"


# ------------------------------------------------------------------ columns

def names(kind):
    return [c["name"] for c in p.COLUMNS[kind]]


def test_every_column_has_all_five_keys():
    for kind, cols in p.COLUMNS.items():
        for c in cols:
            assert set(c) == {"name", "type", "format", "description", "priority"}, kind
            assert c["description"], (kind, c["name"])


def test_column_sets_and_priorities():
    assert names("Pod") == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                            "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in p.COLUMNS["Pod"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert [c["type"] for c in p.COLUMNS["Pod"]][:4] == ["string"] * 4
    assert names("ReplicationController") == ["Name", "Desired", "Current", "Ready", "Age",
                                              "Containers", "Images", "Selector"]
    assert [c["type"] for c in p.COLUMNS["ReplicationController"]][1:4] == ["integer"] * 3
    assert names("Service") == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                                "Selector"]
    assert names("Endpoints") == ["Name", "Endpoints", "Age"]
    assert names("Secret") == ["Name", "Type", "Data", "Age"]
    assert names("Namespace") == ["Name", "Status", "Age"]
    assert names("ResourceQuota") == ["Name", "Request", "Limit", "Age"]
    assert names("Node") == ["Name", "Status", "Roles", "Age", "Version", "Internal-IP",
                             "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]
    assert names("ConfigMap") == ["Name", "Data", "Age"]
    assert names("ServiceAccount") == ["Name", "Secrets", "Age"]
    assert names("Lease") == ["Name", "Holder", "Age"]
    assert names("Scale") == ["Name", "Desired", "Available", "Age"]


def test_event_column_order_and_priorities():
    cols = p.COLUMNS["Event"]
    assert [(c["name"], c["priority"]) for c in cols] == [
        ("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
        ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]
    assert cols[-1]["format"] == "name"
    assert all(c["format"] == "" for c in cols[:-1])


def test_name_formats_and_descriptions():
    name_doc = schema.definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")[
        "properties"]["name"]["description"]
    pod = p.COLUMNS["Pod"]
    assert pod[0] == {"name": "Name", "type": "string", "format": "name",
                      "description": name_doc, "priority": 0}
    assert pod[0]["description"].startswith("Name must be unique within a namespace.")
    assert pod[4]["description"].startswith("CreationTimestamp is a timestamp representing")
    assert pod[3]["description"] == ("The number of times the containers in this pod have been "
                                     "restarted and when the last container in this pod has "
                                     "restarted.")
    assert pod[5]["description"].startswith("podIP address allocated to the pod.")
    # the scale printer's Name column has no "name" format
    assert p.COLUMNS["Scale"][0]["format"] == ""
    assert p.COLUMNS["Scale"][1]["description"] == (
        "replicas is the desired number of instances for the scaled object.")
    assert p.COLUMNS["Node"][1]["description"] == "The status of the node"
    assert p.COLUMNS["Event"][1]["description"] == (
        "Type of this event (Normal, Warning), new types could be added in the future")


def test_default_table_for_kinds_without_printer():
    assert [(c["name"], c["type"], c["format"]) for c in p.DEFAULT_COLUMNS] == [
        ("Name", "string", "name"), ("Created At", "date", "")]
    assert p.columns("LimitRange") == p.DEFAULT_COLUMNS
    assert p.columns("SomethingElse") == p.DEFAULT_COLUMNS
    assert not p.has_printer("LimitRange")
    assert p.has_printer("Pod")
    lr = {"metadata": {"name": "limits", "creationTimestamp": "2024-05-01T10:00:00Z"}}
    assert p.cells("LimitRange", lr, NOW) == ["limits", "2024-05-01T10:00:00Z"]
    lr2 = {"metadata": {"name": "l2", "creationTimestamp": "2024-05-01T12:00:00+02:00"}}
    assert p.cells("LimitRange", lr2, NOW) == ["l2", "2024-05-01T10:00:00Z"]
    assert p.cells("LimitRange", {"metadata": {"name": "n"}}, NOW) == ["n",
                                                                      "0001-01-01T00:00:00Z"]


def test_columns_returns_copies():
    cols = p.columns("Pod")
    cols[0]["name"] = "changed"
    assert p.COLUMNS["Pod"][0]["name"] == "Name"


def test_cells_length_matches_columns_for_every_kind():
    for kind in p.COLUMNS:
        row = p.cells(kind, {"metadata": {"name": "a"}}, NOW)
        assert len(row) == len(p.COLUMNS[kind]), kind


# ------------------------------------------------------------------ pods

def running(name, ready=True, restarts=0, last_finished=None):
    cs = {"name": name, "ready": ready, "restartCount": restarts, "image": "img",
          "imageID": "", "state": {"running": {"startedAt": ago(100)}}}
    if last_finished is not None:
        cs["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(last_finished)}}
    return cs


def waiting(name, reason, restarts=0, last_finished=None):
    cs = {"name": name, "ready": False, "restartCount": restarts, "image": "img",
          "imageID": "", "state": {"waiting": {"reason": reason}}}
    if last_finished is not None:
        cs["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(last_finished)}}
    return cs


def terminated(name, exit_code=0, reason=None, signal=None):
    t = {"exitCode": exit_code, "finishedAt": ago(50)}
    if reason:
        t["reason"] = reason
    if signal:
        t["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "image": "img", "imageID": "",
            "state": {"terminated": t}}


def pod(containers=("a",), statuses=(), phase="Running", init=(), init_statuses=(),
        conditions=(), **extra):
    spec = {"containers": [{"name": n, "image": "img"} for n in containers]}
    if init:
        spec["initContainers"] = list(init)
    status = {"phase": phase, "conditions": list(conditions),
              "containerStatuses": list(statuses)}
    if init_statuses:
        status["initContainerStatuses"] = list(init_statuses)
    obj = {"metadata": meta("web", 600), "spec": spec, "status": status}
    for k, v in extra.items():
        if k in ("nodeName", "readinessGates"):
            spec[k] = v
        elif k in ("podIP", "podIPs", "nominatedNodeName", "reason"):
            status[k] = v
        elif k == "deletionTimestamp":
            obj["metadata"][k] = v
    return obj


def pod_summary(obj):
    return p.cells("Pod", obj, NOW)[1:4]


def test_pod_running_and_crashloop():
    obj = pod(["a", "b"], [running("a"), waiting("b", "CrashLoopBackOff", 5, last_finished=120)])
    row = p.cells("Pod", obj, NOW)
    assert row[:5] == ["web", "1/2", "CrashLoopBackOff", "5 (2m ago)", "10m"]
    assert row[5:] == ["<none>", "<none>", "<none>", "<none>"]
    assert p.conditions("Pod", obj) is None


def test_fresh_pod_is_pending():
    assert pod_summary(pod(["a", "b"], phase="Pending")) == ["0/2", "Pending", "0"]


def test_pod_restarts_without_termination_time():
    assert pod_summary(pod(["a"], [running("a", restarts=3)])) == ["1/1", "Running", "3"]


def test_pod_restarts_take_newest_termination():
    obj = pod(["a", "b"], [running("a", restarts=1, last_finished=4000),
                           running("b", restarts=2, last_finished=400)])
    assert pod_summary(obj) == ["2/2", "Running", "3 (6m40s ago)"]


@pytest.mark.parametrize("status,expected", [
    (waiting("a", "ContainerCreating"), "ContainerCreating"),
    (waiting("a", "ImagePullBackOff"), "ImagePullBackOff"),
    (terminated("a", 0, "Completed"), "Completed"),
    (terminated("a", 137, "OOMKilled"), "OOMKilled"),
    (terminated("a", 2), "ExitCode:2"),
    (terminated("a", 137, signal=9), "Signal:9"),
])
def test_pod_container_reasons(status, expected):
    assert pod_summary(pod(["a"], [status]))[1] == expected


def test_pod_first_container_reason_wins_walking_backwards():
    obj = pod(["a", "b"], [waiting("a", "ErrImagePull"), waiting("b", "ContainerCreating")])
    assert pod_summary(obj) == ["0/2", "ErrImagePull", "0"]


def test_completed_with_running_container_ready_or_not():
    statuses = [running("a"), terminated("b", 0, "Completed")]
    ready_cond = [{"type": "Ready", "status": "True"}]
    assert pod_summary(pod(["a", "b"], statuses, conditions=ready_cond))[1] == "Running"
    assert pod_summary(pod(["a", "b"], statuses))[1] == "NotReady"


def test_pod_status_reason_and_phases():
    evicted = pod(["a"], phase="Failed", reason="Evicted")
    assert pod_summary(evicted) == ["0/1", "Evicted", "0"]
    assert p.conditions("Pod", evicted) == [{"type": "Completed", "status": "True",
                                             "reason": "Failed", "message": "The pod failed."}]
    done = pod(["a"], [terminated("a", 0, "Completed")], phase="Succeeded")
    assert pod_summary(done) == ["0/1", "Completed", "0"]
    assert p.conditions("Pod", done) == [{
        "type": "Completed", "status": "True", "reason": "Succeeded",
        "message": "The pod has completed successfully."}]
    assert p.conditions("Service", done) is None


def test_scheduling_gated():
    obj = pod(["a"], phase="Pending",
              conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    assert pod_summary(obj)[1] == "SchedulingGated"


def test_init_containers_progress():
    init = [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}]
    obj = pod(["a"], [waiting("a", "PodInitializing")], phase="Pending", init=init,
              init_statuses=[terminated("i1", 0, "Completed"), waiting("i2", "PodInitializing")])
    assert pod_summary(obj) == ["0/1", "Init:1/2", "0"]


def test_init_container_failures():
    init = [{"name": "i1", "image": "x"}]
    crash = pod(["a"], phase="Pending", init=init,
                init_statuses=[waiting("i1", "CrashLoopBackOff", 4, last_finished=30)])
    assert pod_summary(crash) == ["0/1", "Init:CrashLoopBackOff", "4 (30s ago)"]
    err = pod(["a"], phase="Pending", init=init, init_statuses=[terminated("i1", 1, "Error")])
    assert pod_summary(err)[1] == "Init:Error"
    code = pod(["a"], phase="Pending", init=init, init_statuses=[terminated("i1", 3)])
    assert pod_summary(code)[1] == "Init:ExitCode:3"
    sig = pod(["a"], phase="Pending", init=init, init_statuses=[terminated("i1", 1, signal=15)])
    assert pod_summary(sig)[1] == "Init:Signal:15"


def test_sidecar_counts_in_total_and_ready_and_restarts():
    init = [{"name": "side", "image": "x", "restartPolicy": "Always"},
            {"name": "setup", "image": "x"}]
    side = running("side", restarts=2, last_finished=300)
    side["started"] = True
    obj = pod(["a"], [running("a", restarts=1, last_finished=60)], init=init,
              init_statuses=[side, terminated("setup", 0, "Completed")],
              conditions=[{"type": "Initialized", "status": "True"}])
    # total = 1 container + 1 sidecar; restarts = sidecar 2 + container 1, newest 60s
    assert pod_summary(obj) == ["2/2", "Running", "3 (60s ago)"]


def test_sidecar_not_started_blocks_initialization():
    init = [{"name": "side", "image": "x", "restartPolicy": "Always"}]
    side = waiting("side", "PodInitializing")
    side["started"] = False
    obj = pod(["a"], phase="Pending", init=init, init_statuses=[side])
    assert pod_summary(obj) == ["0/2", "Init:0/1", "0"]


def test_initializing_pod_with_initialized_condition_uses_containers():
    init = [{"name": "i1", "image": "x"}]
    failed = terminated("i1", 1, "Error")
    failed["restartCount"] = 2
    obj = pod(["a"], [running("a")], init=init, init_statuses=[failed],
              conditions=[{"type": "Initialized", "status": "True"}])
    # containers are walked (ready counted, init restarts dropped) but a running container
    # sets no reason, so the init reason stays -- exactly as printPod does
    assert pod_summary(obj) == ["1/1", "Init:Error", "0"]
    without = pod(["a"], [running("a")], init=init, init_statuses=[failed])
    assert pod_summary(without) == ["0/1", "Init:Error", "2"]


def test_terminating_and_node_lost():
    deleting = pod(["a"], [running("a")], deletionTimestamp=ago(5))
    assert pod_summary(deleting)[1] == "Terminating"
    lost = pod(["a"], [running("a")], deletionTimestamp=ago(5), reason="NodeLost")
    assert pod_summary(lost)[1] == "Unknown"
    finished = pod(["a"], [terminated("a", 0, "Completed")], phase="Succeeded",
                   deletionTimestamp=ago(5))
    assert pod_summary(finished)[1] == "Completed"


def test_pod_wide_columns():
    obj = pod(["a"], [running("a")], nodeName="node-1", podIPs=[{"ip": "10.0.0.5"}],
              nominatedNodeName="node-2",
              readinessGates=[{"conditionType": "g1"}, {"conditionType": "g2"}],
              conditions=[{"type": "g1", "status": "True"}, {"type": "g2", "status": "False"}])
    assert p.cells("Pod", obj, NOW)[5:] == ["10.0.0.5", "node-1", "node-2", "1/2"]
    legacy = pod(["a"], podIP="10.0.0.9")
    assert p.cells("Pod", legacy, NOW)[5] == "10.0.0.9"


# ------------------------------------------------------------------ RC and Scale

def test_replication_controller():
    rc = {"metadata": meta("rc1", 7200),
          "spec": {"replicas": 3, "selector": {"app": "web", "tier": "fe"},
                   "template": {"spec": {"containers": [{"name": "c1", "image": "nginx:1"},
                                                        {"name": "c2", "image": "busybox"}]}}},
          "status": {"replicas": 3, "readyReplicas": 2}}
    assert p.cells("ReplicationController", rc, NOW) == [
        "rc1", 3, 3, 2, "120m", "c1,c2", "nginx:1,busybox", "app=web,tier=fe"]
    bare = {"metadata": meta("rc2"), "spec": {"replicas": 0}, "status": {}}
    assert p.cells("ReplicationController", bare, NOW) == ["rc2", 0, 0, 0, "5m", "", "",
                                                           "<none>"]


def test_scale():
    scale = {"kind": "Scale", "metadata": meta("rc1", 30), "spec": {"replicas": 4},
             "status": {"replicas": 2, "selector": "app=web"}}
    assert p.cells("Scale", scale, NOW) == ["rc1", 4, 2, "30s"]


# ------------------------------------------------------------------ services

def svc(type_, ports=(), **spec_extra):
    spec = {"type": type_, "ports": list(ports), "selector": {"app": "web"}}
    spec.update({k: v for k, v in spec_extra.items() if k != "status"})
    obj = {"metadata": meta("svc", 3600 * 50), "spec": spec}
    if "status" in spec_extra:
        obj["status"] = spec_extra["status"]
    return obj


def test_service_cluster_ip():
    s = svc("ClusterIP", [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    assert p.cells("Service", s, NOW) == ["svc", "ClusterIP", "10.96.0.10", "<none>",
                                          "80/TCP,53/UDP", "2d2h", "app=web"]
    ext = svc("ClusterIP", [{"port": 80, "protocol": "TCP"}], clusterIPs=["10.96.0.11"],
              externalIPs=["1.2.3.4", "5.6.7.8"])
    assert p.cells("Service", ext, NOW)[3] == "1.2.3.4,5.6.7.8"
    headless = svc("ClusterIP", clusterIP="None", clusterIPs=["None"], selector={})
    row = p.cells("Service", headless, NOW)
    assert (row[2], row[4], row[6]) == ("None", "<none>", "<none>")


def test_service_node_port():
    s = svc("NodePort", [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            clusterIPs=["10.96.1.1"])
    assert p.cells("Service", s, NOW)[1:5] == ["NodePort", "10.96.1.1", "<none>",
                                               "80:30080/TCP"]


def test_service_load_balancer():
    pending = svc("LoadBalancer", [{"port": 443, "nodePort": 31443, "protocol": "TCP"}],
                  clusterIPs=["10.96.2.2"])
    assert p.cells("Service", pending, NOW)[3:5] == ["<pending>", "443:31443/TCP"]
    lb_status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.20"},
                                              {"hostname": "lb.example.com"},
                                              {"ip": "203.0.113.10"}]}}
    ready = svc("LoadBalancer", clusterIPs=["10.96.2.2"], status=lb_status)
    # the server prints wide: sorted, de-duplicated, never clipped
    assert p.cells("Service", ready, NOW)[3] == "203.0.113.10,203.0.113.20,lb.example.com"
    assert p.service_external_ip(ready, wide=False) == "203.0.113.10,..."
    both = svc("LoadBalancer", clusterIPs=["10.96.2.2"], externalIPs=["1.1.1.1"],
               status={"loadBalancer": {"ingress": [{"ip": "9.9.9.9"}]}})
    assert p.cells("Service", both, NOW)[3] == "9.9.9.9,1.1.1.1"
    ext_only = svc("LoadBalancer", clusterIPs=["10.96.2.2"], externalIPs=["1.1.1.1"])
    assert p.cells("Service", ext_only, NOW)[3] == "1.1.1.1"


def test_service_external_name():
    s = svc("ExternalName", externalName="db.example.com", selector=None)
    assert p.cells("Service", s, NOW)[1:5] == ["ExternalName", "<none>", "db.example.com",
                                               "<none>"]


# ------------------------------------------------------------------ endpoints

def test_endpoints():
    assert p.cells("Endpoints", {"metadata": meta("e")}, NOW) == ["e", "<none>", "5m"]
    assert p.cells("Endpoints", {"metadata": meta("e"), "subsets": []}, NOW)[1] == "<none>"
    two = {"metadata": meta("e"), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]}
    assert p.cells("Endpoints", two, NOW)[1] == "10.0.0.1:80,10.0.0.2:80"
    many = {"metadata": meta("e"), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
         "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
        {"addresses": [{"ip": "10.0.1.1"}], "ports": [{"port": 8080}]}]}
    # 2 addresses x 2 ports + 1 = 5 endpoints; 3 shown
    assert p.cells("Endpoints", many, NOW)[1] == "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more..."
    exactly3 = {"metadata": meta("e"), "subsets": [
        {"addresses": [{"ip": "a"}, {"ip": "b"}, {"ip": "c"}], "ports": [{"port": 1}]}]}
    assert p.cells("Endpoints", exactly3, NOW)[1] == "a:1,b:1,c:1"
    portless = {"metadata": meta("e"), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"},
                       {"ip": "10.0.0.4"}]}]}
    assert p.cells("Endpoints", portless, NOW)[1] == "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."
    v6 = {"metadata": meta("e"), "subsets": [{"addresses": [{"ip": "fd00::1"}],
                                              "ports": [{"port": 80}]}]}
    assert p.cells("Endpoints", v6, NOW)[1] == "[fd00::1]:80"
    not_ready_only = {"metadata": meta("e"), "subsets": [
        {"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
    assert p.cells("Endpoints", not_ready_only, NOW)[1] == ""


# ------------------------------------------------------------------ config objects

def test_secret_configmap_serviceaccount_namespace_lease():
    secret = {"metadata": meta("s", 86400 * 3), "type": "Opaque",
              "data": {"a": "eA==", "b": "eQ=="}}
    assert p.cells("Secret", secret, NOW) == ["s", "Opaque", 2, "3d"]
    merged = {"metadata": meta("s3"), "type": "Opaque", "data": {"a": "eA=="},
              "stringData": {"a": "x", "c": "z"}}
    assert p.cells("Secret", merged, NOW)[2] == 2
    empty = {"metadata": meta("s2"), "type": "kubernetes.io/tls"}
    assert p.cells("Secret", empty, NOW) == ["s2", "kubernetes.io/tls", 0, "5m"]
    cm = {"metadata": meta("cm"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}}
    assert p.cells("ConfigMap", cm, NOW) == ["cm", 2, "5m"]
    sa = {"metadata": meta("default"), "secrets": [{"name": "tok"}]}
    assert p.cells("ServiceAccount", sa, NOW) == ["default", 1, "5m"]
    assert p.cells("ServiceAccount", {"metadata": meta("b")}, NOW) == ["b", 0, "5m"]
    ns = {"metadata": meta("kube-system", 86400 * 400), "status": {"phase": "Terminating"}}
    assert p.cells("Namespace", ns, NOW) == ["kube-system", "Terminating", "400d"]
    lease = {"metadata": meta("node-1", 60), "spec": {"holderIdentity": "node-1"}}
    assert p.cells("Lease", lease, NOW) == ["node-1", "node-1", "60s"]
    assert p.cells("Lease", {"metadata": meta("l"), "spec": {}}, NOW) == ["l", "", "5m"]


def test_resource_quota():
    rq = {"metadata": meta("q"), "spec": {},
          "status": {"hard": {"pods": "10", "limits.memory": "2Gi", "requests.cpu": "1",
                              "limits.cpu": "2", "configmaps": "5"},
                     "used": {"pods": "3", "limits.memory": "512Mi", "requests.cpu": "250m",
                              "limits.cpu": "500m"}}}
    assert p.cells("ResourceQuota", rq, NOW) == [
        "q", "configmaps: 0/5, pods: 3/10, requests.cpu: 250m/1",
        "limits.cpu: 500m/2, limits.memory: 512Mi/2Gi", "5m"]
    canon = {"metadata": meta("q4"), "status": {"hard": {"requests.memory": "2048Mi",
                                                         "limits.cpu": "1000m"},
                                                "used": {"requests.memory": "0.5Gi"}}}
    assert p.cells("ResourceQuota", canon, NOW)[1:3] == ["requests.memory: 512Mi/2Gi",
                                                         "limits.cpu: 0/1"]
    fresh = {"metadata": meta("q2"), "spec": {"hard": {"pods": "10"}}}
    assert p.cells("ResourceQuota", fresh, NOW) == ["q2", "", "", "5m"]
    # "limits" without a dot is a request-side resource name
    odd = {"metadata": meta("q3"), "status": {"hard": {"limits": "1"}, "used": {"limits": "0"}}}
    assert p.cells("ResourceQuota", odd, NOW)[1:3] == ["limits: 0/1", ""]


# ------------------------------------------------------------------ nodes

def node(conditions=(), labels=None, unschedulable=False, **info):
    obj = {"metadata": meta("n1", 86400 * 10), "spec": {},
           "status": {"conditions": list(conditions),
                      "nodeInfo": {"kubeletVersion": "v1.32.0", **info},
                      "addresses": [{"type": "Hostname", "address": "n1"},
                                    {"type": "InternalIP", "address": "192.168.1.10"}]}}
    if labels:
        obj["metadata"]["labels"] = labels
    if unschedulable:
        obj["spec"]["unschedulable"] = True
    return obj


def test_node_status_roles_and_wide():
    ready = [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]
    labels = {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x",
              "kubernetes.io/role": "master", "kubernetes.io/hostname": "n1"}
    row = p.cells("Node", node(ready, labels, osImage="Debian GNU/Linux 12",
                               kernelVersion="6.1.0", containerRuntimeVersion="containerd://1.7"),
                  NOW)
    assert row == ["n1", "Ready", "control-plane,master", "10d", "v1.32.0", "192.168.1.10",
                   "<none>", "Debian GNU/Linux 12", "6.1.0", "containerd://1.7"]
    not_ready = node([{"type": "Ready", "status": "Unknown"}], unschedulable=True)
    row = p.cells("Node", not_ready, NOW)
    assert row[1:3] == ["NotReady,SchedulingDisabled", "<none>"]
    assert row[7:] == ["<unknown>", "<unknown>", "<unknown>"]
    assert p.cells("Node", node(), NOW)[1] == "Unknown"
    assert p.cells("Node", node(unschedulable=True), NOW)[1] == "Unknown,SchedulingDisabled"


# ------------------------------------------------------------------ events

def test_event_cells_in_column_order():
    ev = {"metadata": meta("web.17a", 600), "type": "Warning", "reason": "BackOff",
          "message": "  Back-off restarting failed container\n",
          "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
          "source": {"component": "kubelet", "host": "node-1"},
          "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 7}
    assert p.cells("Event", ev, NOW) == [
        "30s", "Warning", "BackOff", "pod/web", "spec.containers{a}", "kubelet, node-1",
        "Back-off restarting failed container", "10m", 7, "web.17a"]


def test_event_new_api_fallbacks():
    ev = {"metadata": meta("e2"), "type": "Normal", "reason": "Scheduled", "message": "ok",
          "involvedObject": {"kind": "Node"},
          "eventTime": "2024-05-01T11:58:00.000000Z",
          "reportingController": "default-scheduler", "reportingInstance": "sched-1"}
    assert p.cells("Event", ev, NOW) == ["2m", "Normal", "Scheduled", "node", "",
                                         "default-scheduler, sched-1", "ok", "2m", 1, "e2"]
    series = dict(ev, series={"count": 4, "lastObservedTime": "2024-05-01T11:59:30.000000Z"},
                  source={"component": "kubelet"}, reportingInstance="")
    row = p.cells("Event", series, NOW)
    assert (row[0], row[5], row[7], row[8]) == ("30s", "kubelet", "2m", 4)
    unknown = {"metadata": meta("e3"), "involvedObject": {}}
    assert p.cells("Event", unknown, NOW)[0] == "<unknown>"
