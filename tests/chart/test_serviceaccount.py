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


def test_role_with_an_existing_account_is_not_dropped_silently(render):
    rendered = render({"serviceAccount": {"create": False, "name": "irsa-models"},
                       "server": {"security": {"aws": {"role": ROLE}}}})
    assert rendered.kind("ServiceAccount") == []
    assert 'serviceAccount.create is false, so the chart annotates no ServiceAccount' in rendered.notes
    assert '"irsa-models" must itself carry the annotation' in rendered.notes
    assert f"eks.amazonaws.com/role-arn: {ROLE}" in rendered.notes


def test_annotations_with_an_existing_account_are_reported(render):
    notes = render({"serviceAccount": {"create": False, "annotations": {"team": "ml"}}}).notes
    assert "serviceAccount.annotations are not applied" in notes
    assert "WARNING" not in render({}).notes
