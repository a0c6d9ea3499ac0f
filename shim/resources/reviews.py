"""The create-only, never-stored kinds of authorization.k8s.io/v1 and
authentication.k8s.io/v1: SelfSubjectAccessReview, SelfSubjectRulesReview,
SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectReview, TokenReview.

They declare only names and scope here (`virtual = True`, verbs = create); the
answer is computed by the handlers in shim/api/auth/reviews.py, which the HTTP face
calls instead of storing the object (App.create_handlers).
"""
from __future__ import annotations

from shim.resources.base import Resource


class _Review(Resource):
    verbs = ("create",)
    namespaced = False
    virtual = True


class SelfSubjectAccessReviews(_Review):
    group = "authorization.k8s.io"
    kind, plural, singular = "SelfSubjectAccessReview", "selfsubjectaccessreviews", \
        "selfsubjectaccessreview"


class SelfSubjectRulesReviews(_Review):
    group = "authorization.k8s.io"
    kind, plural, singular = "SelfSubjectRulesReview", "selfsubjectrulesreviews", \
        "selfsubjectrulesreview"


class SubjectAccessReviews(_Review):
    group = "authorization.k8s.io"
    kind, plural, singular = "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview"


class LocalSubjectAccessReviews(_Review):
    group = "authorization.k8s.io"
    kind, plural, singular = "LocalSubjectAccessReview", "localsubjectaccessreviews", \
        "localsubjectaccessreview"
    namespaced = True


class SelfSubjectReviews(_Review):
    group = "authentication.k8s.io"
    kind, plural, singular = "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview"


class TokenReviews(_Review):
    group = "authentication.k8s.io"
    kind, plural, singular = "TokenReview", "tokenreviews", "tokenreview"


REVIEW_KINDS = (LocalSubjectAccessReviews, SelfSubjectAccessReviews, SelfSubjectRulesReviews,
                SubjectAccessReviews, SelfSubjectReviews, TokenReviews)
