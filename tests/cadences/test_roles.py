"""Billing managers edit cadences; supervisors see them read-only and control campaigns."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from cadences.models import SmsTemplate
from cadences.roles import BILLING_MANAGED, BILLING_MANAGERS, SUPERVISORS, roles_install

pytestmark = pytest.mark.django_db

CADENCE_MODELS = ("segment", "cadencestep", "smstemplate", "dialersettings", "statecalllimit")
SUPERVISOR_CONTROLLED = ("campaign", "queueitem", "followuptask", "promisetopay", "suppression", "alert")


def perms(group: str) -> set[str]:
    return {f"{app}.{code}" for app, code in Group.objects.get(name=group).permissions.values_list("content_type__app_label", "codename")}


def test_billing_managers_edit_every_cadences_model_and_view_campaigns() -> None:
    granted = perms(BILLING_MANAGERS)
    for model in CADENCE_MODELS:
        for action in ("add", "change", "delete", "view"):
            assert f"cadences.{action}_{model}" in granted
    for model in apps.get_app_config("campaigns").get_models():
        name = model._meta.model_name
        assert f"campaigns.view_{name}" in granted
        assert (f"campaigns.change_{name}" in granted) == (name in BILLING_MANAGED), name


def test_supervisors_view_cadences_and_control_campaigns() -> None:
    granted = perms(SUPERVISORS)
    for model in CADENCE_MODELS:
        assert f"cadences.view_{model}" in granted
        for action in ("add", "change", "delete"):
            assert f"cadences.{action}_{model}" not in granted
    for model in apps.get_app_config("campaigns").get_models():
        name = model._meta.model_name
        assert f"campaigns.view_{name}" in granted
        assert (f"campaigns.change_{name}" in granted) == (name in SUPERVISOR_CONTROLLED), name
        assert f"campaigns.delete_{name}" not in granted


def _template_post(template: SmsTemplate, body: str) -> dict[str, str]:
    return {"name": template.name, "phase": template.phase, "body": body}


def test_a_supervisor_cannot_change_a_template(supervisor_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Past due - holding things up")
    original = template.body
    url = reverse("admin:cadences_smstemplate_change", args=[template.pk])
    page = supervisor_client.get(url)
    assert page.status_code == 200  # read-only view
    assert 'name="body"' not in page.content.decode()
    response = supervisor_client.post(url, _template_post(template, "Changed by a supervisor. Reply STOP to opt out."))
    assert response.status_code == 403
    template.refresh_from_db()
    assert template.body == original
    assert supervisor_client.get(reverse("admin:cadences_smstemplate_add")).status_code == 403


def test_a_billing_manager_can_change_a_template(billing_manager_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Past due - holding things up")
    url = reverse("admin:cadences_smstemplate_change", args=[template.pk])
    body = "Hi {{ first_name }}, {{ amount_due }} is past due: {{ payment_link }} Reply STOP to opt out."
    response = billing_manager_client.post(url, _template_post(template, body))
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.body == body
    assert template.history.latest().history_user.username == "bianca"


def test_users_have_the_permissions_of_their_group(supervisor_client: Client, billing_manager_client: Client) -> None:
    users = get_user_model().objects
    sam, bianca = users.get(username="sam"), users.get(username="bianca")
    assert sam.has_perm("campaigns.change_campaign") and not sam.has_perm("cadences.change_smstemplate")
    assert bianca.has_perm("cadences.change_dialersettings") and not bianca.has_perm("campaigns.change_campaign")


def test_roles_install_is_idempotent_and_restores_a_missing_baseline_permission() -> None:
    group = Group.objects.get(name=SUPERVISORS)
    before = perms(SUPERVISORS)
    group.permissions.remove(group.permissions.get(codename="view_segment"))
    roles_install()
    roles_install()
    assert perms(SUPERVISORS) == before
    assert Group.objects.filter(name__in=[BILLING_MANAGERS, SUPERVISORS]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_groups_come_back_after_a_flush() -> None:
    # `flush` (run between transactional tests) empties every table and then sends post_migrate
    # without the migrated app registry; the roles are recreated with their permissions.
    call_command("flush", interactive=False, verbosity=0)
    assert {"campaigns.change_campaign", "cadences.view_segment"} <= perms(SUPERVISORS)
    assert "cadences.change_smstemplate" in perms(BILLING_MANAGERS)
