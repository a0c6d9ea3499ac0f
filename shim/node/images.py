"""Image references: parsing and normalisation like containerd/docker, and pull policy.

Owns the grammar of `[domain[:port]/]path[:tag][@digest]` (docker's distribution
reference rules) and its normalised form as containerd stores image names
(`busybox` -> `docker.io/library/busybox:latest`), plus the kubelet's pull-policy
decisions. Pure functions, no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DEFAULT_REGISTRY_ENDPOINT = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
_ANCHORED_HEX64 = re.compile(r"^[a-f0-9]{64}$")

PULL_ALWAYS = "Always"
PULL_IF_NOT_PRESENT = "IfNotPresent"
PULL_NEVER = "Never"


class ReferenceError(ValueError):
    """An image reference that does not parse; the message is docker's wording."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, normalised image reference."""

    domain: str          # "docker.io", "127.0.0.1:5000"
    path: str            # "library/busybox"
    tag: str = ""        # "" when only a digest was given
    digest: str = ""     # "sha256:..." or ""

    @property
    def repository(self) -> str:
        """domain/path, the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What to ask the registry's manifests endpoint for: the digest if any, else the tag."""
        return self.digest or self.tag

    @property
    def endpoint_host(self) -> str:
        """The registry host to contact (docker.io is served by registry-1.docker.io)."""
        return DEFAULT_REGISTRY_ENDPOINT if self.domain == DEFAULT_DOMAIN else self.domain

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """The short form docker prints: `busybox:latest`, `me/app:v1`, `host:5000/x:y`."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        return DEFAULT_DOMAIN, name
    return first, rest


def parse(ref: str) -> Reference:
    """Parse and normalise like containerd's `reference/docker.ParseDockerRef`.

    Adds `docker.io`, `library/` and the `latest` tag (only when there is no digest).
    """
    if not ref:
        raise ReferenceError("invalid reference format")
    if _ANCHORED_HEX64.match(ref):
        raise ReferenceError(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    m = _REFERENCE.match(ref)
    if m is None:
        if _REFERENCE.match(ref.lower()) is not None:
            raise ReferenceError("invalid reference format: repository name must be lowercase")
        raise ReferenceError("invalid reference format")
    name = m.group("name")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    domain, path = _split_domain(name)
    if path.lower() != path:
        raise ReferenceError("invalid reference format: repository name must be lowercase")
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    tag = m.group("tag") or ""
    digest = m.group("digest") or ""
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize(ref: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest` (the name containerd stores)."""
    return str(parse(ref))


def default_pull_policy(image: str) -> str:
    """The API server's default imagePullPolicy: Always for `:latest` or no tag, else IfNotPresent."""
    try:
        ref = parse(image)
    except ReferenceError:
        return PULL_IF_NOT_PRESENT
    return PULL_ALWAYS if ref.tag == DEFAULT_TAG else PULL_IF_NOT_PRESENT


def should_pull(policy: str, present: bool) -> bool:
    """Whether the kubelet pulls before starting a container with this policy."""
    if policy == PULL_ALWAYS:
        return True
    if policy == PULL_NEVER:
        return False
    return not present


def never_pull_message(image: str) -> str:
    """The kubelet's ErrImageNeverPull message for a missing image with policy Never."""
    return (f'Container image "{image}" is not present with pull policy of Never')
