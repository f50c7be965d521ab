"""Staff read every text in the admin; nobody edits or deletes one."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse

from cadences.models import DialerSettings
from campaigns.models import PayLinkCode, SmsMessage
from tests.cadences.admin_forms import change_form_data
from tests.campaigns.sms_factories import queue_item, running_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


def _message() -> SmsMessage:
    campaign = running_campaign()
    item = queue_item(campaign, client_id="C-555")
    return SmsMessage.objects.create(
        local_id="qi-20250610-C-555-touchpoint",
        campaign=campaign,
        queue_item=item,
        client_id=item.client_id,
        phone=item.phone,
        inbox_id=item.inbox_id,
        text="Hi Jordan, your payment link: https://pay.example.com/p/x Reply STOP to opt out.",
    )


def test_the_changelist_finds_a_text_by_its_words_and_client(staff_client):
    message = _message()
    url = reverse("admin:campaigns_smsmessage_changelist")
    for query in ("C-555", "payment link", message.local_id):
        response = staff_client.get(url, {"q": query})
        assert response.status_code == 200
        assert message.local_id in response.content.decode()
    assert message.local_id not in staff_client.get(url, {"q": "nothing like it"}).content.decode()


def test_a_text_can_be_read_but_not_changed_added_or_deleted(staff_client):
    message = _message()
    detail = staff_client.get(reverse("admin:campaigns_smsmessage_change", args=[message.pk]))
    assert detail.status_code == 200 and "Reply STOP to opt out." in detail.content.decode()
    assert staff_client.post(reverse("admin:campaigns_smsmessage_change", args=[message.pk]), {"text": "edited"}).status_code == 403
    assert staff_client.get(reverse("admin:campaigns_smsmessage_add")).status_code == 403
    assert staff_client.post(reverse("admin:campaigns_smsmessage_delete", args=[message.pk]), {"post": "yes"}).status_code == 403
    message.refresh_from_db()
    assert message.text.startswith("Hi Jordan")


def test_saving_a_template_warns_when_the_text_for_a_queued_client_runs_past_the_parts_limit(staff_client, settings):
    settings.PAYMENT_LINK_TEMPLATE = "https://billing.example.com/pay/{token}/"
    item = queue_item(running_campaign(), client_id="C-777")
    template = item.step.sms_template
    DialerSettings.objects.update(sms_max_parts=1)
    url = reverse("admin:cadences_smstemplate_change", args=[template.pk])
    data = change_form_data(staff_client, url)

    short = "Hi {{ first_name }}, pay here: {{ payment_link }} Reply STOP to opt out."
    response = staff_client.post(url, {**data, "body": short})
    assert response.status_code == 302
    assert not [m for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]

    # 125 characters of wording and a 49-character link: 174, two parts (a 160-character one fits in one).
    long = (
        "Hi {{ first_name }}, your balance can be paid online in a minute, any time of day or night: {{ payment_link }} "
        "Questions? Reply STOP to opt out."
    )
    response = staff_client.post(url, {**data, "body": long})
    assert response.status_code == 302
    (warning,) = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]
    assert "For 1 of the 1 clients queued for it" in warning and "more than 1 SMS parts" in warning and "C-777 (2 parts)" in warning
    assert not PayLinkCode.objects.exists()  # the check issued no link
