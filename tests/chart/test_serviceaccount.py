"""The ServiceAccount carries the IAM role of server.security.aws.role."""

from __future__ import annotations

ROLE = "arn:aws:iam::123456789012:role/Tms-s3-role"


def test_role_annotation_merges_with_user_annotations(render):
    account = render({"server": {"security": {"aws": {"role": ROLE}}},
                      "serviceAccount": {"annotations": {"team": "ml"}}}).one("ServiceAccount")
    assert account["metadata"]["annotations"] == {"team": "ml", "eks.amazonaws.com/role-arn": ROLE}


def test_no_annotations_by_default(render):
    assert "annotations" not in render({}).one("ServiceAccount")["metadata"]


def test_existing_service_account(render):
    rendered = render({"serviceAccount": {"create": False, "name": "irsa-models"},
                       "server": {"security": {"aws": {"role": ROLE}}}})
    assert rendered.kind("ServiceAccount") == []
    assert rendered.pod["serviceAccountName"] == "irsa-models"
    assert rendered.pod["automountServiceAccountToken"] is True


def test_default_account_when_not_created(render):
    assert render({"serviceAccount": {"create": False}}).pod["serviceAccountName"] == "default"
