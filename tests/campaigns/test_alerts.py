"""One open alert per campaign and source: a failing vendor says so once, not once a minute."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.models import Alert, Campaign
from campaigns.alerts import ALERT_REPEAT_WINDOW, alert_raise

pytestmark = pytest.mark.django_db


def test_a_repeat_refreshes_the_open_alert_and_other_sources_keep_their_own() -> None:
    campaign = Campaign.objects.create(date=dt.date(2025, 6, 10))
    first = alert_raise(campaign=campaign, source="heymarket", message="Texts are failing: 502")
    again = alert_raise(campaign=campaign, source="heymarket", message="Texts are failing: 503")
    assert again.pk == first.pk and Alert.objects.get(pk=first.pk).message == "Texts are failing: 503"
    alert_raise(campaign=campaign, source="retell", message="Retell did not answer")
    alert_raise(campaign=campaign, source="heymarket", level=Alert.Level.WARNING, message="slow")
    other_day = Campaign.objects.create(date=dt.date(2025, 6, 11))
    alert_raise(campaign=other_day, source="heymarket", message="Texts are failing: 502")
    assert Alert.objects.count() == 4


def test_after_an_acknowledgement_or_the_window_a_new_alert_is_raised() -> None:
    campaign = Campaign.objects.create(date=dt.date(2025, 6, 10))
    first = alert_raise(campaign=campaign, source="flush", message="History flush failed")
    Alert.objects.filter(pk=first.pk).update(acknowledged_at=timezone.now())
    second = alert_raise(campaign=campaign, source="flush", message="History flush failed")
    assert second.pk != first.pk
    Alert.objects.filter(pk=second.pk).update(created_at=timezone.now() - ALERT_REPEAT_WINDOW - dt.timedelta(seconds=1))
    third = alert_raise(campaign=campaign, source="flush", message="History flush failed")
    assert third.pk not in (first.pk, second.pk) and Alert.objects.count() == 3
