from __future__ import annotations

from django.urls import URLPattern, path

from integrations.sandbox import views

urlpatterns: list[URLPattern] = [
    path("config", views.config, name="sandbox-config"),
    path("dispatch", views.dispatch, name="sandbox-dispatch"),
    path("retell/v2/create-phone-call", views.retell_create_phone_call, name="sandbox-retell-create-call"),
    path("retell/v2/get-call/<str:call_id>", views.retell_get_call, name="sandbox-retell-get-call"),
    path("retell/get-concurrency", views.retell_get_concurrency, name="sandbox-retell-concurrency"),
    path("dialflow/v1/ring-groups/<path:ring_group>/availability", views.dialflow_availability, name="sandbox-dialflow-availability"),
    path("heymarket/v1/message/send", views.heymarket_send, name="sandbox-heymarket-send"),
    path("heymarket/v1/contact/status", views.heymarket_contact_status, name="sandbox-heymarket-contact-status"),
    path("heymarket/v1/contact/set_status", views.heymarket_contact_set_status, name="sandbox-heymarket-contact-set-status"),
    path("heymarket/inject", views.heymarket_inject, name="sandbox-heymarket-inject"),
    path("heymarket/messages", views.heymarket_messages, name="sandbox-heymarket-messages"),
    path("stripe/v1/checkout/sessions", views.stripe_checkout_sessions, name="sandbox-stripe-checkout-sessions"),
    path("stripe/v1/checkout/sessions/<str:session_id>", views.stripe_checkout_session, name="sandbox-stripe-checkout-session"),
    path(
        "stripe/v1/checkout/sessions/<str:session_id>/expire",
        views.stripe_checkout_session_expire,
        name="sandbox-stripe-checkout-session-expire",
    ),
    path("stripe/checkout/<str:session_id>", views.stripe_checkout_page, name="sandbox-stripe-checkout-page"),
]
