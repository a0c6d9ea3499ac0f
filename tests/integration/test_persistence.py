"""Acknowledged writes survive kill -9: same objects, same resourceVersions, watches resume."""
from __future__ import annotations

import json

from tests.conftest import Raw, ServerProcess


def test_kill9_restart_keeps_objects_and_resource_versions(tmp_path):
    s = ServerProcess(str(tmp_path / "srv")).start()
    r = Raw(s)
    made = []
    for i in range(30):
        code, o, _, _ = r("POST", "/api/v1/namespaces/default/configmaps", json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"k{i}"},
             "data": {"i": str(i)}}))
        assert code == 201
        made.append(o)
    _, lst, _, _ = r("GET", "/api/v1/namespaces/default/configmaps")
    list_rv = lst["metadata"]["resourceVersion"]
    s.kill9()
    s.start()
    r = Raw(s)
    for o in made:
        code, got, _, _ = r("GET", f"/api/v1/namespaces/default/configmaps/{o['metadata']['name']}")
        assert code == 200
        assert got["metadata"]["resourceVersion"] == o["metadata"]["resourceVersion"]
        assert got["metadata"]["uid"] == o["metadata"]["uid"] and got["data"] == o["data"]
    _, lst2, _, _ = r("GET", "/api/v1/namespaces/default/configmaps")
    assert int(lst2["metadata"]["resourceVersion"]) >= int(list_rv)
    # a watch from a pre-crash revision replays what came after it
    mid = made[14]["metadata"]["resourceVersion"]
    code, _, _, body = r("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1"
                                f"&resourceVersion={mid}")
    names = [json.loads(x)["object"]["metadata"]["name"] for x in body.splitlines() if x]
    assert names[:15] == [f"k{i}" for i in range(15, 30)]
    # new writes continue the revision sequence
    code, o, _, _ = r("POST", "/api/v1/namespaces/default/configmaps", json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}))
    assert int(o["metadata"]["resourceVersion"]) > int(made[-1]["metadata"]["resourceVersion"])
    s.stop()
