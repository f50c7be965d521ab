"""Alerts a supervisor sees on the dashboard: one open alert per campaign and source.

A vendor that keeps failing (a warehouse down through every flush retry, HeyMarket answering
500 to each text) would otherwise bury everything else under copies of one message. A repeat
within ALERT_REPEAT_WINDOW refreshes the open alert's message instead; after the window, or
once a supervisor acknowledged it, a new alert says the trouble goes on.
"""

from __future__ import annotations

import datetime as dt


from campaigns.models import Alert, Campaign
from integrations import clock

ALERT_REPEAT_WINDOW = dt.timedelta(minutes=15)


def alert_raise(*, campaign: Campaign | None, source: str, message: str, level: str = Alert.Level.ERROR) -> Alert:
    """The open alert for (campaign, source, level), with `message` now; a new one if none is open."""
    open_alert = (
        Alert.objects.filter(
            campaign=campaign,
            source=source,
            level=level,
            acknowledged_at__isnull=True,
            created_at__gte=clock.now() - ALERT_REPEAT_WINDOW,
        )
        .order_by("-created_at")
        .first()
    )
    if open_alert is None:
        return Alert.objects.create(campaign=campaign, source=source, level=level, message=message)
    if open_alert.message != message:
        Alert.objects.filter(pk=open_alert.pk).update(message=message)
        open_alert.message = message
    return open_alert
