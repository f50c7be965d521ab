"""Campaign URLs: vendor webhooks."""

from __future__ import annotations

from django.urls import include, path

from campaigns.api import accounts
from campaigns.api import views as api
from campaigns.dashboard import reviews, views
from campaigns.payments import views as payments
from campaigns.mail import views as mail
from campaigns.webhooks import heymarket, retell, stripe

urlpatterns = [
    path("webhooks/retell/", retell.retell_webhook, name="campaigns-retell-webhook"),
    path("webhooks/retell/inbound/", retell.retell_inbound_webhook, name="campaigns-retell-inbound-webhook"),
    path("webhooks/retell/functions/", retell.retell_function_webhook, name="campaigns-retell-function-webhook"),
    path("webhooks/heymarket/", heymarket.heymarket_webhook, name="campaigns-heymarket-webhook"),
    path("webhooks/stripe/", stripe.stripe_webhook, name="campaigns-stripe-webhook"),
    # The client's payment link (ours, signed) and the pages the payment provider sends them back to.
    path("pay/thanks/", payments.pay_thanks, name="campaigns-pay-thanks"),
    path("pay/cancelled/", payments.pay_cancelled, name="campaigns-pay-cancelled"),
    path("pay/<str:token>/", payments.pay_link, name="campaigns-pay-link"),
    # The unsubscribe link of every follow-up e-mail (signed, never expiring).
    path("email/unsubscribe/<str:token>/", mail.email_unsubscribe, name="campaigns-email-unsubscribe"),
    # Supervisor dashboard, KPIs and client timelines.
    path("dashboard/", views.dashboard, name="campaigns-dashboard"),
    path("dashboard/status/", views.dashboard_status, name="campaigns-dashboard-status"),
    path("dashboard/campaigns/create/", views.campaign_create_today, name="campaigns-campaign-create"),
    path("dashboard/campaigns/<int:pk>/<slug:action>/", views.campaign_control, name="campaigns-campaign-control"),
    path("dashboard/kpis/", views.kpis_page, name="campaigns-kpis"),
    path("dashboard/kpis/payments.csv", views.payment_kpis_csv, name="campaigns-payment-kpis-csv"),
    path("dashboard/clients/", views.client_search, name="campaigns-client-search"),
    path("dashboard/follow-ups/", views.follow_up_queue, name="campaigns-follow-ups"),
    path("dashboard/clients/<str:client_id>/", views.client_timeline, name="campaigns-client-timeline"),
    # The review of the first calls after a cadence change.
    path("dashboard/reviews/", reviews.review_rounds, name="campaigns-review-rounds"),
    path("dashboard/reviews/<int:pk>/", reviews.review_round, name="campaigns-review-round"),
    path("dashboard/reviews/<int:pk>/<int:review_pk>/", reviews.review_mark, name="campaigns-review-mark"),
    # REST API (DRF): accounts, campaigns, queue items, follow-up tasks, KPIs, token, OpenAPI schema and docs.
    path("api/", include(accounts.account_urlpatterns)),
    path("api/", include(api.api_urlpatterns)),
]
