"""Admission plugins of the real apiserver that kubeshim runs in process, on `REST.admission`
(each an object with `async admit(AdmissionAttributes)` that may change attrs.obj or raise a
StatusError): NamespaceLifecycle's immortal namespaces, LimitRanger, ResourceQuota.

The order is the apiserver's: mutating LimitRanger before the validating ResourceQuota.
"""
from __future__ import annotations


def default_plugins() -> list:
    from shim.api.admission.limitranger import LimitRanger
    from shim.api.admission.namespacelifecycle import NamespaceLifecycle
    from shim.api.admission.resourcequota import ResourceQuotaAdmission
    return [NamespaceLifecycle(), LimitRanger(), ResourceQuotaAdmission()]
