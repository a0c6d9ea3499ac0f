"""Pod volumes on the node (the kubelet's volume manager for the in-tree local plugins).

Owns, for one pod:
- the host directory of every volume, <data-dir>/pods/<uid>/volumes/<plugin>/<name> with the
  kubelet's plugin names (kubernetes.io~empty-dir, ~secret, ~configmap, ~downward-api,
  ~projected); hostPath volumes use the host path itself after its `type` check;
- the payloads of the API-data volumes (secret, configMap, downwardAPI, projected with
  serviceAccountToken) as {relative path: (bytes, mode)}, with the kubelet's errors for
  missing objects and keys, `items`, `defaultMode`/`mode` and `optional`;
- the kubelet's atomic writer layout: files live in a timestamped `..<time>.<rand>` directory,
  `..data` is a symlink to it swapped by rename, and each top-level path is a symlink through
  `..data`, so a reader sees either the old or the new set, never a mix;
- emptyDir with medium Memory as a tmpfs (sizeLimit honoured), unmounted at clean-up;
- the OCI mounts of a container's volumeMounts (readOnly, subPath; API-data volumes are always
  read-only);
- bound service-account tokens through the TokenRequest API (serviceaccounts/NAME/token),
  refreshed after 80 % of their lifetime.
`VolumeManager.setup()` is re-run at every pod sync, so ConfigMap/Secret changes reach the
files within a resync period. Pure functions are separated from file-system work.
"""
from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import tempfile
import time
from typing import Awaitable, Callable

from shim.node import oci

EMPTY_DIR = "kubernetes.io~empty-dir"
SECRET = "kubernetes.io~secret"
CONFIGMAP = "kubernetes.io~configmap"
DOWNWARD_API = "kubernetes.io~downward-api"
PROJECTED = "kubernetes.io~projected"
API_DATA = (SECRET, CONFIGMAP, DOWNWARD_API, PROJECTED)

DEFAULT_MODE = 0o644
DATA_DIR_NAME = "..data"
TOKEN_REFRESH_FRACTION = 0.8
TOKEN_MAX_AGE = 24 * 3600
REFRESH_PERIOD = 10.0            # how often a pod with Secret/ConfigMap volumes re-syncs them

Payload = dict[str, tuple[bytes, int]]


class MountError(Exception):
    """A volume could not be set up: the FailedMount event's text follows `volume`."""

    def __init__(self, volume: str, message: str):
        super().__init__(message)
        self.volume = volume
        self.message = message

    def event_message(self) -> str:
        return f'MountVolume.SetUp failed for volume "{self.volume}" : {self.message}'


# ---- payloads (pure) ---------------------------------------------------------------------

def _b64(v: str) -> bytes:
    try:
        return base64.b64decode(v)
    except (ValueError, TypeError):
        return b""


def _mode(item_mode, default_mode: int) -> int:
    return int(item_mode) if item_mode is not None else default_mode


def _key_payload(data: dict[str, bytes], items: list | None, default_mode: int, optional: bool,
                 missing_key: str) -> Payload:
    """All keys (no items) or the listed keys at their paths; `missing_key` is the error
    prefix for a listed key that is absent."""
    out: Payload = {}
    if not items:
        for k, v in data.items():
            out[k] = (v, default_mode)
        return out
    for it in items:
        key = it.get("key", "")
        if key not in data:
            if optional:
                continue
            raise ValueError(f"{missing_key}: {key}")
        out[it.get("path") or key] = (data[key], _mode(it.get("mode"), default_mode))
    return out


def secret_payload(secret: dict | None, source: dict, default_mode: int | None = None) -> Payload:
    """The files of a secret volume source (or projection). ValueError carries the kubelet's
    message; a missing optional secret gives an empty payload."""
    name = source.get("secretName", source.get("name", ""))
    optional = bool(source.get("optional"))
    mode = _mode(source.get("defaultMode"), DEFAULT_MODE) if default_mode is None else default_mode
    if secret is None:
        if optional:
            return {}
        raise ValueError(f'secret "{name}" not found')
    data = {k: _b64(v) for k, v in (secret.get("data") or {}).items()}
    return _key_payload(data, source.get("items"), mode, optional,
                        "references non-existent secret key")


def configmap_payload(cm: dict | None, source: dict, default_mode: int | None = None) -> Payload:
    """The files of a configMap volume source (data and binaryData)."""
    name = source.get("name", "")
    optional = bool(source.get("optional"))
    mode = _mode(source.get("defaultMode"), DEFAULT_MODE) if default_mode is None else default_mode
    if cm is None:
        if optional:
            return {}
        raise ValueError(f'configmap "{name}" not found')
    data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: _b64(v) for k, v in (cm.get("binaryData") or {}).items()})
    return _key_payload(data, source.get("items"), mode, optional,
                        "configmap references non-existent config key")


def downward_payload(pod: dict, items: list | None, default_mode: int,
                     host_ip: str = "") -> Payload:
    """The files of a downwardAPI volume (fieldRef and resourceFieldRef items)."""
    from shim.node.agent import field_ref_value, resource_field_value
    out: Payload = {}
    containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    for it in items or []:
        mode = _mode(it.get("mode"), default_mode)
        if it.get("fieldRef"):
            value = field_ref_value(pod, it["fieldRef"].get("fieldPath", ""), host_ip)
        elif it.get("resourceFieldRef"):
            ref = it["resourceFieldRef"]
            c = containers.get(ref.get("containerName"))
            if c is None:
                raise ValueError(f"cannot find container: {ref.get('containerName', '')}")
            value = resource_field_value(c, ref)
        else:
            continue
        out[it.get("path", "")] = (value.encode(), mode)
    return out


def token_request_body(pod: dict, source: dict) -> dict:
    """The TokenRequest the kubelet sends for a serviceAccountToken projection."""
    meta = pod.get("metadata") or {}
    spec: dict = {"expirationSeconds": int(source.get("expirationSeconds") or 3600),
                  "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                     "name": meta.get("name", ""), "uid": meta.get("uid", "")}}
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


# ---- host paths --------------------------------------------------------------------------

_TYPE_CHECKS = {
    "Directory": (stat.S_ISDIR, "is not a directory"),
    "File": (stat.S_ISREG, "is not a file"),
    "Socket": (stat.S_ISSOCK, "is not a socket file"),
    "CharDevice": (stat.S_ISCHR, "is not a character device"),
    "BlockDevice": (stat.S_ISBLK, "is not a block device"),
}


def check_host_path(path: str, typ: str | None) -> None:
    """The hostPath `type` check (creating for DirectoryOrCreate / FileOrCreate); raises
    ValueError with the kubelet's message."""
    typ = typ or ""
    if typ == "DirectoryOrCreate":
        if not os.path.exists(path):
            os.makedirs(path, 0o755, exist_ok=True)
        typ = "Directory"
    elif typ == "FileOrCreate":
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
        typ = "File"
    if typ not in _TYPE_CHECKS:
        return
    test, what = _TYPE_CHECKS[typ]
    try:
        st = os.stat(path)
    except OSError:
        raise ValueError(f"hostPath type check failed: {path} {what}") from None
    if not test(st.st_mode):
        raise ValueError(f"hostPath type check failed: {path} {what}")


# ---- the atomic writer -------------------------------------------------------------------

def read_payload(target: str) -> Payload | None:
    """What `..data` currently holds (None when nothing was written yet)."""
    data = os.path.join(target, DATA_DIR_NAME)
    if not os.path.islink(data):
        return None
    out: Payload = {}
    root = os.path.realpath(data)
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = (fh.read(), stat.S_IMODE(os.stat(p).st_mode))
    return out


def _clean_path(p: str) -> str:
    return os.path.normpath(p).lstrip("/")


def write_atomic(target: str, payload: Payload, gid: int | None = None) -> bool:
    """Make `target` show exactly `payload`, atomically; False when it already did. With
    `gid` (the pod's fsGroup) the files and directories belong to that group."""
    payload = {_clean_path(k): v for k, v in payload.items()}
    if read_payload(target) == payload:
        return False
    os.makedirs(target, exist_ok=True)
    os.chmod(target, 0o755)
    data = os.path.join(target, DATA_DIR_NAME)
    old = os.path.realpath(data) if os.path.islink(data) else None
    ts = tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S."), dir=target)
    os.chmod(ts, 0o755)
    for rel, (content, mode) in payload.items():
        p = os.path.join(ts, rel)
        os.makedirs(os.path.dirname(p), 0o755, exist_ok=True)
        with open(p, "wb") as f:
            f.write(content)
        os.chmod(p, mode)
    if gid is not None:
        for d, dirs, files in os.walk(ts):
            for x in [d] + [os.path.join(d, f) for f in files]:
                os.chown(x, -1, gid)
    tmp = os.path.join(target, DATA_DIR_NAME + "_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.basename(ts), tmp)
    os.rename(tmp, data)
    tops = {rel.split("/", 1)[0] for rel in payload}
    for top in tops:
        link = os.path.join(target, top)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_DIR_NAME, top), link)
    for entry in os.listdir(target):
        if entry.startswith("..") or entry in tops:
            continue
        p = os.path.join(target, entry)
        if os.path.islink(p):
            os.unlink(p)
    if old and old != os.path.realpath(ts):
        shutil.rmtree(old, ignore_errors=True)
    return True


# ---- tmpfs ---------------------------------------------------------------------------------

def _mount_points_under(path: str) -> list[str]:
    path = os.path.abspath(path).rstrip("/") + "/"
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                mp = parts[4].replace("\\040", " ") if len(parts) > 4 else ""
                if mp.startswith(path):
                    out.append(mp)
    except OSError:
        pass
    return out


def ensure_tmpfs(path: str, size_limit: int | None = None) -> None:
    """A tmpfs at `path` (emptyDir medium Memory) unless one is mounted there already."""
    os.makedirs(path, exist_ok=True)
    if os.path.ismount(path):
        return
    opts = "mode=0777" + (f",size={size_limit}" if size_limit else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ValueError(f"mount tmpfs at {path}: {r.stderr.strip()}")


def unmount_all(pod_dir: str) -> None:
    """Unmount every mount below a pod's directory (tmpfs emptyDirs), deepest first."""
    for mp in sorted(_mount_points_under(pod_dir), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


# ---- the per-pod manager -------------------------------------------------------------------

Lookup = Callable[[str, str], Awaitable[dict | None]]          # (kind, name) -> object
TokenFn = Callable[[str, dict], Awaitable[tuple[str, float]]]   # (sa, body) -> (token, exp)


def plugin_of(volume: dict) -> str:
    for key, plugin in (("emptyDir", EMPTY_DIR), ("secret", SECRET), ("configMap", CONFIGMAP),
                        ("downwardAPI", DOWNWARD_API), ("projected", PROJECTED),
                        ("hostPath", "hostPath")):
        if key in volume:
            return plugin
    return ""


def has_user_api_data(pod: dict) -> bool:
    """Whether the pod mounts a Secret or ConfigMap besides the cluster CA of kube-api-access."""
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if "secret" in v or "configMap" in v:
            return True
        for s in (v.get("projected") or {}).get("sources") or []:
            if s.get("secret") is not None or \
                    (s.get("configMap") or {}).get("name", "kube-root-ca.crt") != "kube-root-ca.crt":
                return True
    return False


class VolumeManager:
    """The volumes of one pod: `await setup(pod)` (idempotent; refreshes API data) then
    `mounts(container)` for the OCI spec."""

    def __init__(self, pod_dir: str, lookup: Lookup, request_token: TokenFn | None = None,
                 host_ip: str = "", clock: Callable[[], float] = time.time):
        self.pod_dir = pod_dir
        self.lookup = lookup
        self.request_token = request_token
        self.host_ip = host_ip
        self.clock = clock
        self.paths: dict[str, str] = {}              # volume name -> host path
        self.plugins: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float, float]] = {}   # key -> (token, issued, exp)

    def volume_dir(self, plugin: str, name: str) -> str:
        return os.path.join(self.pod_dir, "volumes", plugin, name)

    async def setup(self, pod: dict) -> None:
        """Create or refresh every volume of `pod`; raises MountError for the first failing."""
        for v in (pod.get("spec") or {}).get("volumes") or []:
            name = v.get("name", "")
            plugin = plugin_of(v)
            if not plugin:
                continue
            try:
                self.paths[name] = await self._setup_one(pod, v, plugin)
                self.plugins[name] = plugin
            except (ValueError, OSError) as e:
                raise MountError(name, str(e)) from None
            except Exception as e:                  # API errors (StatusError) looking objects up
                if type(e).__name__ != "StatusError":
                    raise
                raise MountError(name, str(getattr(e, "message", e))) from None

    async def _setup_one(self, pod: dict, v: dict, plugin: str) -> str:
        name = v["name"]
        if plugin == "hostPath":
            hp = v["hostPath"]
            check_host_path(hp.get("path", ""), hp.get("type"))
            return hp.get("path", "")
        d = self.volume_dir(plugin, name)
        fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        if plugin == EMPTY_DIR:
            os.makedirs(d, exist_ok=True)
            ed = v.get("emptyDir") or {}
            if ed.get("medium") == "Memory":
                from shim.node.agent import _bytes
                ensure_tmpfs(d, _bytes(ed.get("sizeLimit")))
            if fs_group is not None:               # group-owned, setgid: new files inherit it
                os.chown(d, -1, int(fs_group))
                os.chmod(d, 0o2777)
            else:
                os.chmod(d, 0o777)
            return d
        payload = await self.payload(pod, v, plugin)
        if fs_group is not None:                   # the kubelet's SetVolumeOwnership: g+r
            payload = {k: (data, mode | 0o040) for k, (data, mode) in payload.items()}
        write_atomic(d, payload, None if fs_group is None else int(fs_group))
        return d

    async def payload(self, pod: dict, v: dict, plugin: str) -> Payload:
        if plugin == SECRET:
            src = v["secret"] or {}
            return secret_payload(await self.lookup("secret", src.get("secretName", "")), src)
        if plugin == CONFIGMAP:
            src = v["configMap"] or {}
            return configmap_payload(await self.lookup("configmap", src.get("name", "")), src)
        if plugin == DOWNWARD_API:
            src = v["downwardAPI"] or {}
            return downward_payload(pod, src.get("items"),
                                    _mode(src.get("defaultMode"), DEFAULT_MODE), self.host_ip)
        return await self.projected_payload(pod, v["projected"] or {})

    async def projected_payload(self, pod: dict, src: dict) -> Payload:
        mode = _mode(src.get("defaultMode"), DEFAULT_MODE)
        out: Payload = {}
        for s in src.get("sources") or []:
            if s.get("secret") is not None:
                sec = s["secret"]
                out.update(secret_payload(await self.lookup("secret", sec.get("name", "")), sec,
                                          mode))
            elif s.get("configMap") is not None:
                cm = s["configMap"]
                out.update(configmap_payload(await self.lookup("configmap", cm.get("name", "")),
                                             cm, mode))
            elif s.get("downwardAPI") is not None:
                out.update(downward_payload(pod, s["downwardAPI"].get("items"), mode,
                                            self.host_ip))
            elif s.get("serviceAccountToken") is not None:
                sat = s["serviceAccountToken"]
                token = await self.token(pod, sat)
                out[sat.get("path", "token")] = (token.encode(), mode)
        return out

    async def token(self, pod: dict, source: dict) -> str:
        """A bound token for the pod's service account, cached until 80 % of its life."""
        if self.request_token is None:
            raise ValueError("no token source")
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        key = f"{sa}/{source.get('audience', '')}/{source.get('expirationSeconds')}"
        now = self.clock()
        cached = self._tokens.get(key)
        if cached is not None and not needs_refresh(cached[1], cached[2], now):
            return cached[0]
        try:
            token, exp = await self.request_token(sa, token_request_body(pod, source))
        except Exception as e:
            if cached is not None and cached[2] > now:
                return cached[0]                       # keep serving the still-valid one
            raise ValueError(f"failed to fetch token: {getattr(e, 'message', e)}") from None
        self._tokens[key] = (token, now, exp)
        return token

    def mounts(self, container: dict) -> list[dict]:
        """The OCI bind mounts of the container's volumeMounts (set-up volumes only)."""
        out = []
        for vm in container.get("volumeMounts") or []:
            src = self.paths.get(vm.get("name", ""))
            if src is None:
                continue
            plugin = self.plugins.get(vm["name"], "")
            if vm.get("subPath"):
                src = subpath_source(src, vm["subPath"], create=plugin in (EMPTY_DIR, "hostPath"))
            ro = bool(vm.get("readOnly")) or plugin in API_DATA
            out.append(oci.bind_mount(src, vm.get("mountPath", ""), readonly=ro))
        return out


def needs_refresh(issued: float, expires: float, now: float) -> bool:
    """The kubelet's token manager: refresh after 80 % of the lifetime or 24 h."""
    ttl = expires - issued
    return now > issued + min(ttl * TOKEN_REFRESH_FRACTION, TOKEN_MAX_AGE) or now >= expires


def subpath_source(volume_dir: str, sub_path: str, create: bool = True) -> str:
    """The host path of a subPath inside a volume (symlinks resolved; it must stay inside)."""
    base = os.path.realpath(volume_dir)
    p = os.path.join(volume_dir, _clean_path(sub_path))
    if create and not os.path.lexists(p):
        os.makedirs(p, 0o777, exist_ok=True)
        os.chmod(p, 0o777)
    real = os.path.realpath(p)
    if real != base and not real.startswith(base + "/"):
        raise ValueError(f"subpath {sub_path!r} not within volume path {volume_dir!r}")
    return real
