"""The containerd client against a real containerd 1.6 + runc, a local registry and a
one-layer busybox image: import, pull (plain, basic auth), run and exit codes via events,
kill, exec, list by labels, re-adoption after restarts, clean deletion."""
from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
import uuid

import pytest

from shim.node import oci
from shim.node.containerd.client import ContainerdError, chain_ids
from shim.node.containerd.managed import ManagedContainerd
from shim.node.containerd.registry import RegistryError
from tests.node.conftest import REGISTRY_PASSWORD, REGISTRY_USER

IMAGE = "docker.io/library/busybox:test"
CGROUP_PARENT = "/kubeshim-test"


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def imported(managed, busybox_image):
    async def go():
        async with managed.client() as c:
            return await c.import_archive(busybox_image.path)
    return run(go())


@pytest.fixture
def cid(managed):
    """A fresh container id; whatever a test left under it (or its -b/-trap siblings) is
    deleted afterwards, with its cgroup dirs."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    ids = (name, name + "-b", name + "-trap")

    async def cleanup():
        async with managed.client() as c:
            for i in ids:
                await c.delete(i)
    run(cleanup())
    for i in ids:
        oci.remove_cgroup(f"{CGROUP_PARENT}/{i}")


def spec_for(cid: str, *args: str, **kw) -> dict:
    return oci.build_spec(list(args), cgroups_path=f"{CGROUP_PARENT}/{cid}", hostname=cid, **kw)


def registry_digest(host: str, repo: str, tag: str, auth: tuple[str, str] | None = None) -> str:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    if auth:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.headers["Docker-Content-Digest"]


def test_version(managed):
    async def go():
        async with managed.client() as c:
            return await c.version()
    v = run(go())
    assert v["version"].startswith("1.6.")
    assert v["revision"]


def test_managed_instance_is_reused(managed):
    again = ManagedContainerd(os.path.dirname(managed.dir)).start()
    assert again.reused is True
    assert again.pid == managed.pid
    assert again.socket == managed.socket


def test_import_archive_stores_image_with_gc_labels(managed, busybox_image, imported):
    assert [i.name for i in imported] == [IMAGE]
    assert imported[0].digest == busybox_image.manifest_digest
    assert imported[0].media_type == "application/vnd.oci.image.manifest.v1+json"

    async def go():
        async with managed.client() as c:
            return (await c.get_image(IMAGE), await c.content_labels(busybox_image.manifest_digest),
                    await c.content_labels(busybox_image.config_digest),
                    await c.content_labels(busybox_image.layer_digest),
                    await c.snapshot_exists(busybox_image.diff_id), await c.image_config(IMAGE),
                    await c.list_images())
    image, mlabels, clabels, llabels, snap, ic, listed = run(go())
    assert image.digest == busybox_image.manifest_digest
    assert mlabels == {"containerd.io/gc.ref.content.config": busybox_image.config_digest,
                       "containerd.io/gc.ref.content.l.0": busybox_image.layer_digest}
    # one layer: the chainID is the diff_id
    assert clabels == {"containerd.io/gc.ref.snapshot.overlayfs": busybox_image.diff_id}
    assert llabels == {"containerd.io/uncompressed": busybox_image.diff_id}
    assert snap is True
    assert ic.chain_id == busybox_image.diff_id
    assert ic.config["Cmd"] == ["sh"]
    assert ic.size == busybox_image.size
    assert IMAGE in [i.name for i in listed]


def test_import_twice_is_idempotent(managed, busybox_image, imported):
    async def go():
        async with managed.client() as c:
            return await c.import_archive(busybox_image.path)
    again = run(go())
    assert again[0].digest == imported[0].digest


def test_pull_from_plain_registry_and_run(managed, registry, busybox_image, imported, cid, node_tmp):
    ref = registry.push(busybox_image.path, "test/busybox:plain")
    want = registry_digest(registry.host, "test/busybox", "plain")
    out = os.path.join(node_tmp, f"{cid}.out")

    async def go():
        async with managed.client() as c:
            await c.delete_image(ref)
            image = await c.pull(ref)
            await c.create_container(cid, ref, spec_for(cid, "cat", "/etc/passwd"))
            await c.start_task(cid, stdout=out, stderr=out)
            status = await c.wait(cid, timeout=30)
            await c.delete(cid)
            return image, status
    image, status = run(go())
    assert image.name == f"{registry.host}/test/busybox:plain"
    assert image.digest == want
    assert status.code == 0
    assert open(out).read().startswith("root:x:0:0:")


def test_pull_with_basic_auth(managed, auth_registry, busybox_image, imported):
    ref = auth_registry.push(busybox_image.path, "private/busybox:1")

    async def go():
        async with managed.client() as c:
            await c.delete_image(ref)
            with pytest.raises(RegistryError) as denied:
                await c.pull(ref)
            with pytest.raises(RegistryError) as wrong:
                await c.pull(ref, auth=(REGISTRY_USER, "wrong"))
            image = await c.pull(ref, auth=(REGISTRY_USER, REGISTRY_PASSWORD))
            return denied.value, wrong.value, image, await c.get_image(ref)
    denied, wrong, image, stored = run(go())
    assert denied.unauthorized and wrong.unauthorized
    assert image.digest == registry_digest(auth_registry.host, "private/busybox", "1",
                                           (REGISTRY_USER, REGISTRY_PASSWORD))
    assert stored is not None and stored.digest == image.digest


def test_pull_missing_tag_is_not_found(managed, registry):
    async def go():
        async with managed.client() as c:
            with pytest.raises(RegistryError) as e:
                await c.pull(f"{registry.host}/test/nothing:here")
            return e.value
    assert run(go()).not_found


def test_run_output_and_exit_code_via_exit_event(managed, imported, cid, node_tmp):
    out, err = os.path.join(node_tmp, f"{cid}.out"), os.path.join(node_tmp, f"{cid}.err")

    async def go():
        async with managed.client() as c:
            async with c.subscribe() as events:
                info = await c.create_container(
                    cid, IMAGE, spec_for(cid, "sh", "-c", "echo hi; echo oops >&2; exit 3"),
                    labels={"io.kubeshim/test": "run"})
                pid = await c.start_task(cid, stdout=out, stderr=err)
                seen = []
                while True:
                    ev = await events.next(timeout=30)
                    seen.append(ev)
                    if ev.topic == "/tasks/exit" and ev.container_id == cid:
                        break
            task = await c.get_task(cid)
            deleted = await c.delete(cid)
            return info, pid, seen, task, deleted
    info, pid, seen, task, deleted = run(go())
    assert info.id == cid and info.image == IMAGE and info.snapshot_key == cid
    assert info.runtime == "io.containerd.runc.v2"
    topics = [e.topic for e in seen if e.container_id == cid]
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit"]
    exit_ev = seen[-1]
    assert exit_ev.exit_status == 3
    assert exit_ev.exec_id == cid
    assert exit_ev.pid == pid
    assert exit_ev.namespace == "kubeshim"
    assert exit_ev.exited_at is not None
    assert task.status == "stopped" and task.exit_status == 3
    assert deleted.code == 3
    assert open(out).read() == "hi\n"
    assert open(err).read() == "oops\n"


def test_kill_with_sigterm_and_sigkill(managed, imported, cid, node_tmp):
    trap_id = cid + "-trap"
    out = os.path.join(node_tmp, f"{trap_id}.out")

    async def go():
        async with managed.client() as c:
            # a shell that handles TERM
            await c.create_container(trap_id, IMAGE, spec_for(
                trap_id, "sh", "-c", 'trap "echo got-term; exit 0" TERM; sleep 1000 & wait'))
            await c.start_task(trap_id, stdout=out, stderr=out)
            await asyncio.sleep(0.2)     # let sh install its trap before signalling
            await c.kill(trap_id, signal.SIGTERM)
            trapped = await c.wait(trap_id, timeout=30)
            await c.delete(trap_id)
            # bare `sleep 1000` is PID 1 of its namespace: TERM is ignored, KILL is not
            await c.create_container(cid, IMAGE, spec_for(cid, "sleep", "1000"))
            pid = await c.start_task(cid)
            running = await c.get_task(cid)
            await c.kill(cid, signal.SIGTERM)
            with pytest.raises(ContainerdError):
                await c.wait(cid, timeout=0.3)       # the deadline cancels the call only
            still = await c.get_task(cid)
            await c.kill(cid, signal.SIGKILL)
            killed = await c.wait(cid, timeout=30)
            await c.delete(cid)
            return trapped, pid, running, still, killed
    trapped, pid, running, still, killed = run(go())
    assert trapped.code == 0
    assert open(out).read() == "got-term\n"
    assert running.status == "running" and running.pid == pid
    assert still.status == "running" and still.pid == pid
    assert killed.code == 128 + signal.SIGKILL


def test_exec_in_running_task(managed, imported, cid, node_tmp):
    out = os.path.join(node_tmp, f"{cid}.exec")

    async def go():
        async with managed.client() as c:
            await c.create_container(cid, IMAGE, spec_for(cid, "sleep", "1000", env={"A": "1"}))
            await c.start_task(cid)
            epid = await c.exec(cid, "e1", ["sh", "-c", 'echo "exec $A $B $(hostname)"; exit 7'],
                                env={"B": "2"}, stdout=out, stderr=out)
            status = await c.wait(cid, "e1", timeout=30)
            reaped = await c.delete_process(cid, "e1")
            metrics = await c.metrics([cid])
            pids = await c.pids(cid)
            deleted = await c.delete(cid)
            return epid, status, reaped, metrics, pids, deleted
    epid, status, reaped, metrics, pids, deleted = run(go())
    assert epid > 0
    assert status.code == 7 and reaped.code == 7
    assert open(out).read() == f"exec 1 2 {cid}\n"
    assert metrics[cid]["memory_usage_bytes"] > 0
    assert len(pids) == 1
    assert deleted.code == 128 + signal.SIGKILL      # delete kills a running task


def test_list_by_labels(managed, imported, cid):
    other = cid + "-b"

    async def go():
        async with managed.client() as c:
            await c.create_container(cid, IMAGE, spec_for(cid, "sleep", "1000"),
                                     labels={"io.kubeshim/pod": "p1", "io.kubeshim/name": "a"})
            await c.create_container(other, IMAGE, spec_for(other, "sleep", "1000"),
                                     labels={"io.kubeshim/pod": "p2", "io.kubeshim/name": "a"})
            await c.start_task(cid)
            by_pod = await c.list_containers({"io.kubeshim/pod": "p1"})
            by_name = await c.list_containers({"io.kubeshim/name": "a"})
            both = await c.list_containers({"io.kubeshim/pod": "p2", "io.kubeshim/name": "a"})
            none = await c.list_containers({"io.kubeshim/pod": "p1", "io.kubeshim/name": "b"})
            tasks = await c.list_tasks()
            await c.delete(cid)
            await c.delete(other)
            return by_pod, by_name, both, none, tasks
    by_pod, by_name, both, none, tasks = run(go())
    assert [c.id for c in by_pod] == [cid]
    assert by_pod[0].labels == {"io.kubeshim/pod": "p1", "io.kubeshim/name": "a"}
    assert sorted(c.id for c in by_name) == sorted([cid, other])
    assert [c.id for c in both] == [other]
    assert none == []
    assert tasks[cid].status == "running"
    assert other not in tasks       # created, never started


def test_readopt_after_client_and_containerd_restart(managed, imported, cid):
    labels = {"io.kubeshim/pod-uid": "u-" + cid}

    async def before():
        async with managed.client() as c:
            await c.create_container(cid, IMAGE, spec_for(cid, "sleep", "1000"), labels=labels)
            return await c.start_task(cid)
    pid = run(before())
    old = managed.pid
    managed.stop()
    managed.start()
    assert managed.pid != old and not managed.reused
    assert os.path.exists(f"/proc/{pid}")              # the container outlived containerd

    async def after():
        async with managed.client() as c:
            found = await c.list_containers(labels)
            task = await c.get_task(cid)
            async with c.subscribe() as events:
                await c.kill(cid, signal.SIGKILL)
                while True:
                    ev = await events.next(timeout=30)
                    if ev.topic == "/tasks/exit" and ev.container_id == cid:
                        break
            await c.delete(cid)
            return found, task, ev
    found, task, ev = run(after())
    assert [f.id for f in found] == [cid]
    assert task.status == "running" and task.pid == pid
    assert ev.exit_status == 137


def test_delete_leaves_nothing_behind(managed, imported, cid):
    async def go():
        async with managed.client() as c:
            await c.create_container(cid, IMAGE, spec_for(cid, "sleep", "1000"))
            await c.start_task(cid)
            present = (await c.snapshot_exists(cid), await c.get_container(cid) is not None)
            await c.delete(cid)
            gone = (await c.snapshot_exists(cid), await c.get_container(cid),
                    await c.get_task(cid), cid in await c.list_tasks(),
                    [x.id for x in await c.list_containers()])
            again = await c.delete(cid)            # deleting twice is fine
            return present, gone, again
    present, gone, again = run(go())
    assert present == (True, True)
    snap, container, task, listed, ids = gone
    assert (snap, container, task, listed) == (False, None, None, False)
    assert cid not in ids
    assert again is None
    assert not os.path.exists(os.path.join(managed.runc_root, "kubeshim", cid))
    assert not os.path.exists(os.path.join(managed.state, "io.containerd.runtime.v2.task",
                                           "kubeshim", cid))


def test_missing_image_is_not_found(managed):
    async def go():
        async with managed.client() as c:
            with pytest.raises(ContainerdError) as e:
                await c.create_container("never", "docker.io/library/nope:1", {})
            return e.value, await c.snapshot_exists("never")
    err, snap = run(go())
    assert err.not_found
    assert snap is False


def test_delete_image_then_gc_keeps_running_container_snapshot(managed, busybox_image, cid):
    name = "docker.io/library/busybox:gc"

    async def go():
        async with managed.client() as c:
            await c.import_archive(busybox_image.path, name=name)
            await c.create_container(cid, name, spec_for(cid, "sleep", "1000"))
            await c.start_task(cid)
            removed = await c.delete_image(name, sync=True)
            task = await c.get_task(cid)
            await c.delete(cid)
            return removed, await c.get_image(name), task
    removed, image, task = run(go())
    assert removed is True and image is None
    assert task.status == "running"


def test_chain_ids():
    assert chain_ids([]) == []
    assert chain_ids(["sha256:a"]) == ["sha256:a"]
    import hashlib
    second = "sha256:" + hashlib.sha256(b"sha256:a sha256:b").hexdigest()
    assert chain_ids(["sha256:a", "sha256:b"]) == ["sha256:a", second]


def test_exec_with_fifos(managed, imported, cid, node_tmp):
    """The kubectl-exec shape: stdin/stdout FIFOs made by the caller, stdin closed via CloseIO."""
    d = os.path.join(node_tmp, cid)
    os.makedirs(d)
    fin, fout = os.path.join(d, "in"), os.path.join(d, "out")
    os.mkfifo(fin)
    os.mkfifo(fout)

    async def go():
        async with managed.client() as c:
            await c.create_container(cid, IMAGE, spec_for(cid, "sleep", "1000"))
            await c.start_task(cid)
            rfd = os.open(fout, os.O_RDONLY | os.O_NONBLOCK)      # reader first
            wfd = os.open(fin, os.O_RDWR | os.O_NONBLOCK)         # no ENXIO without a reader
            try:
                await c.exec(cid, "cat1", ["sh", "-c", "cat; echo done"], stdin=fin, stdout=fout)
                os.write(wfd, b"ping\n")
                os.close(wfd)
                wfd = None
                await c.close_stdin(cid, "cat1")
                status = await c.wait(cid, "cat1", timeout=30)
                chunks = []
                while True:
                    try:
                        data = os.read(rfd, 65536)
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
                        continue
                    if not data:
                        break
                    chunks.append(data)
                    if b"done\n" in b"".join(chunks):
                        break
            finally:
                os.close(rfd)
                if wfd is not None:
                    os.close(wfd)
            await c.delete_process(cid, "cat1")
            await c.delete(cid)
            return status, b"".join(chunks)
    status, output = run(go())
    assert status.code == 0
    assert output == b"ping\ndone\n"
