"""The served kinds: one line per kind module."""
from __future__ import annotations

from shim.resources.base import Registry
from shim.resources.configmaps import ConfigMaps
from shim.resources.endpoints import Endpoints
from shim.resources.events import Events
from shim.resources.leases import Leases
from shim.resources.limitranges import LimitRanges
from shim.resources.namespaces import Namespaces
from shim.resources.nodes import Nodes
from shim.resources.pods import Pods
from shim.resources.rbac import ClusterRoleBindings, ClusterRoles, RoleBindings, Roles
from shim.resources.replicationcontrollers import ReplicationControllers
from shim.resources.resourcequotas import ResourceQuotas
from shim.resources.reviews import REVIEW_KINDS
from shim.resources.secrets import Secrets
from shim.resources.serviceaccounts import ServiceAccounts
from shim.resources.services import Services


def build_registry() -> Registry:
    # the order of /api/v1 discovery (alphabetical by plural, like the real server's)
    kinds = [ConfigMaps(), Endpoints(), Events(), LimitRanges(), Namespaces(), Nodes(), Pods(),
             ReplicationControllers(), ResourceQuotas(), Secrets(), ServiceAccounts(), Services(),
             Leases()]
    kinds += [ClusterRoleBindings(), ClusterRoles(), RoleBindings(), Roles()]   # rbac
    kinds += [k() for k in REVIEW_KINDS]     # authorization/authentication reviews (not stored)
    return Registry(kinds)
