"""A busy day's Stripe webhooks — 1,000 events (payments and refunds), a fifth redelivered,
shuffled, from 4 threads at once — leave 0 events lost, 0 payments double-counted and each refund
counted once (the same burst `make bench` times)."""

from __future__ import annotations

import pytest

from benchmarks import stripe_webhooks

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_burst_loses_nothing_and_counts_each_payment_once():
    figures = stripe_webhooks.burst_run()
    assert figures["all_200"] is True
    assert (figures["lost"], figures["doubled"], figures["amount_ok"], figures["refunds_ok"]) == (0, 0, True, True)
