"""Accounts for queue items a test makes directly: the queue load writes both, so a test's items
get theirs through the loader's own upsert."""

from __future__ import annotations

from collections.abc import Sequence

from campaigns.models import QueueItem
from campaigns.queue import load as queue
from integrations import clock


def accounts_for(items: Sequence[QueueItem]) -> None:
    by_client = {item.client_id: item for item in items}
    queue.accounts_upsert(
        accounts=[
            {
                "client_id": item.client_id,
                "name": item.client_name,
                "phone": item.phone,
                "email": item.email,
                "segment_id": item.segment_id,
                "days_past_due": item.days_past_due,
                "amount_due": item.amount_due,
                "timezones": item.timezones,
                "state": item.state,
                "postal_code": item.postal_code,
                "payment_link": item.payment_link,
                "owner": "",
                "tier": "",
                "status": queue.account_status(item.segment, item.days_past_due),
            }
            for item in by_client.values()
        ],
        now=clock.now(),
        campaign_date=items[0].campaign.date if items else clock.now().date(),
    )
