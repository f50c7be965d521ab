"""The SMS template editor: refused saves name the problem; good saves are recorded with who and when."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from cadences.models import SmsTemplate

pytestmark = pytest.mark.django_db


def change_url(template: SmsTemplate) -> str:
    return reverse("admin:cadences_smstemplate_change", args=[template.pk])


def post(client: Client, template: SmsTemplate, **fields: str) -> object:
    data = {"name": template.name, "phase": template.phase, "body": template.body, **fields}
    return client.post(change_url(template), data)


def body_errors(response: object) -> list[str]:
    return list(response.context["adminform"].form.errors.get("body", []))  # type: ignore[attr-defined]


def test_unknown_variable_is_refused_with_its_name(admin_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Past due - holding things up")
    original = template.body
    response = post(admin_client, template, body="Hi {{ nick_name }}. Reply STOP to opt out.")
    assert response.status_code == 200
    assert any("Unknown variable 'nick_name'" in e for e in body_errors(response))
    assert "Unknown variable &#x27;nick_name&#x27;" in response.content.decode()
    template.refresh_from_db()
    assert template.body == original


def test_syntax_error_is_refused_with_djangos_message(admin_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Past due - holding things up")
    response = post(admin_client, template, body="Hi {% if first_name %}you. Reply STOP to opt out.")
    assert response.status_code == 200
    assert any(e.startswith("Template syntax error:") and "endif" in e for e in body_errors(response))


def test_soft_intro_citing_the_amount_is_refused(admin_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Soft intro - friendly reminder")
    response = post(admin_client, template, body="Hi {{ first_name }}, {{ amount_due }} is due. Reply STOP to opt out.")
    assert response.status_code == 200
    assert any("must not cite the amount" in e for e in body_errors(response))


def test_a_template_shared_by_soft_intro_steps_cannot_start_citing_the_amount(admin_client: Client) -> None:
    # Moving the template to the past-due phase does not make it right for the soft-intro steps using it.
    template = SmsTemplate.objects.get(name="Soft intro - friendly reminder")
    response = post(
        admin_client, template, phase="past_due", body="Hi {{ first_name }}, {{ amount_due }} is due. Reply STOP to opt out."
    )
    assert response.status_code == 200
    assert any(e.startswith("Used by a soft intro step:") for e in body_errors(response))


def test_a_good_edit_is_saved_and_its_history_says_who_and_what(admin_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Past due - holding things up")
    new_body = "Hi {{ first_name }}, {{ amount_due }} is past due: {{ payment_link }} Reply STOP to opt out."
    response = post(admin_client, template, body=new_body)
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.body == new_body
    latest = template.history.latest()
    assert latest.history_user.username == "admin"
    assert latest.history_type == "~"
    assert latest.prev_record.history_change_reason == "Shipped default content"
    delta = latest.diff_against(latest.prev_record)
    assert [change.field for change in delta.changes] == ["body"]
    history_page = admin_client.get(reverse("admin:cadences_smstemplate_history", args=[template.pk]))
    assert history_page.status_code == 200 and "admin" in history_page.content.decode()


def test_change_page_shows_preview_length_and_parts(admin_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Re-engagement - ready when you are")
    page = admin_client.get(change_url(template)).content.decode()
    assert "Jordan, we&#x27;re still here" in page  # rendered on the sample client
    assert "SMS part" in page and "(GSM-7)" in page
    assert 'id="sms-live-preview"' in page and "cadences/template_preview.js" in page


def test_live_preview_renders_the_body_being_edited(admin_client: Client) -> None:
    url = reverse("admin:cadences_smstemplate_preview")
    result = admin_client.post(url, {"body": "Hi {{ first_name }}, {{ amount_due }} due. Reply STOP to opt out.", "phase": "past_due"}).json()
    assert result["text"] == "Hi Jordan, $249.00 due. Reply STOP to opt out."
    assert result["length"] == {"encoding": "GSM-7", "characters": len(result["text"]), "segments": 1}
    assert result["problems"] == []

    result = admin_client.post(url, {"body": "Hi {{ nickname }} {{ amount_due }} €", "phase": "soft_intro"}).json()
    assert result["length"]["encoding"] == "GSM-7"
    problems = " ".join(result["problems"])
    assert "'nickname'" in problems and "must not cite the amount" in problems and "opt-out" in problems

    result = admin_client.post(url, {"body": "{% if %}", "phase": "past_due"}).json()
    assert result["text"] == "" and result["problems"][0].startswith("Template syntax error:")


def test_live_preview_requires_post_and_a_staff_login(admin_client: Client, client: Client) -> None:
    url = reverse("admin:cadences_smstemplate_preview")
    assert admin_client.get(url).status_code == 405
    response = client.post(url, {"body": "x"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_page_shows_one_preview_and_each_problem_once(admin_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Past due - holding things up")
    page = admin_client.get(change_url(template)).content.decode()
    assert page.count('class="sms-bubble"') == 1
    assert 'id="sms-live-preview"' in page and "Preview on sample data" not in page

    refused = post(admin_client, template, body="Hi {{ nick_name }}. Reply STOP to opt out.").content.decode()  # type: ignore[attr-defined]
    assert refused.count("Unknown variable") == 1
    assert refused.count('class="sms-bubble"') == 1


def test_who_may_only_read_a_template_sees_its_saved_preview(supervisor_client: Client) -> None:
    template = SmsTemplate.objects.get(name="Past due - holding things up")
    page = supervisor_client.get(change_url(template))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Preview on sample data" in html and 'id="sms-live-preview"' not in html
    assert html.count('class="sms-bubble"') == 1
