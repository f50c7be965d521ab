"""`/api/accounts/`: the durable client records, and one client's story newest first.

The events are the client timeline's (`dashboard.selectors.client_timeline`), so the API and the
page can never tell different stories. Codes stay in the machine fields (`kind`, `outcome`,
`rule`); times are ISO 8601 with their offset, on the campaign's clock.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Q, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_field
from django.urls import include, path
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import roles
from campaigns.api.views import ByRole
from campaigns.dashboard import selectors
from campaigns.models import Account

# Timeline kinds as the API names them.
EVENT_KINDS = {
    "call": "call",
    "inbound_call": "inbound_call",
    "sms": "sms",
    "promise": "promise",
    "task": "task",
    "suppression": "suppression",
    "suppression_lifted": "suppression_lifted",
    "gate": "gate_block",
    "ledger": "contact",
    "payment": "payment",
    "live_tool": "live_tool",
    "callback": "callback",
}


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def _event_fields(event: selectors.TimelineEvent) -> dict[str, Any]:
    o = event.obj
    if event.kind in ("call", "inbound_call"):
        return {
            "call_id": o.call_id,
            "outcome": o.outcome or o.status,
            "outcome_display": o.get_outcome_display() if o.outcome else o.get_status_display(),
            "campaign_date": o.campaign.date.isoformat() if o.campaign is not None else None,
            "from_number": o.from_number,
            "to_number": o.to_number,
            "placed_at": _iso(o.placed_at),
            "duration_ms": o.duration_ms,
            "disconnection_reason": o.disconnection_reason,
            "summary": o.summary,
            "transcript": o.transcript,
            "recording_url": o.recording_url,
            "transfer_destination": o.transfer_destination,
        }
    if event.kind == "sms":
        return {"local_id": o.local_id, "status": o.status, "sms_kind": o.kind, "phone": o.phone, "text": o.text, "sent_at": _iso(o.sent_at)}
    if event.kind == "promise":
        return {
            "call_id": o.call_id,
            "status": o.status,
            "amount": str(o.amount) if o.amount is not None else None,
            "promised_date": o.promised_date.isoformat(),
            "amount_recovered": str(o.amount_recovered) if o.amount_recovered is not None else None,
        }
    if event.kind == "task":
        return {
            "task_id": o.pk,
            "task_kind": o.kind,
            "status": o.status,
            "team": o.team,
            "owner": o.owner.get_username() if o.owner_id else None,
            "due_at": _iso(o.due_at),
            "detail": o.detail,
        }
    if event.kind in ("suppression", "suppression_lifted"):
        return {"reason": o.reason, "channel": o.channel, "source": o.source, "lifted_at": _iso(o.lifted_at)}
    if event.kind == "gate":
        return {
            "rule": o.rule,
            "rule_display": event.title.removeprefix("Not contacted: "),
            "channel": o.channel,
            "detail": o.detail,
            "campaign_date": o.campaign_date.isoformat() if o.campaign_date else None,
            "inputs": o.inputs,
            "shared_number": event.shared_number,
        }
    if event.kind == "ledger":
        return {"contact_kind": o.kind, "outcome": o.outcome, "phone": o.phone, "reference": o.reference}
    if event.kind == "payment":
        return {
            "amount": str(o.amount), "source": o.source, "reference": o.reference, "paid_at": _iso(o.paid_at),
            "call_id": o.call_id, "promise_id": o.promise_id,
            "balance_after": str(o.balance_after) if o.balance_after is not None else None,
            "refunded_amount": str(o.refunded_amount), "disputed_amount": str(o.disputed_amount),
            "dispute_status": o.dispute_status, "dispute_status_display": o.dispute_status_label if o.dispute_status else "",
            "net_amount": str(o.net_amount),
        }  # fmt: skip
    if event.kind == "live_tool":
        # As stored: the identity answers themselves are never kept, only whether one was given.
        return {"call_id": o.call_id, "function": o.name, "result": o.result, "args": o.args}
    if event.kind == "callback":
        return {"due_at": _iso(o.due_at), "status": o.status, "consent_call_id": o.consent_call_id, "requested_text": o.requested_text}
    return {}


class AccountSerializer(serializers.ModelSerializer):
    segment = serializers.CharField(source="segment.name", read_only=True, allow_null=True, default=None)
    status_display = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = Account
        fields = [
            "client_id", "name", "status", "status_display", "segment", "days_past_due", "amount_due", "phone",
            "email", "state", "postal_code", "timezones", "payment_link", "owner", "tier",
            "first_seen_at", "last_seen_at", "last_campaign_date",
        ]  # fmt: skip
        read_only_fields = fields


class AccountEventSerializer(serializers.Serializer):
    """One event; besides these, each kind carries its own fields (calls: call_id, outcome,
    summary, transcript, recording_url, placed_at…; gate_block: rule, detail, inputs…)."""

    kind = serializers.CharField(help_text="call, inbound_call, sms, promise, task, suppression, suppression_lifted, gate_block, contact, payment, live_tool, callback")
    at = serializers.DateTimeField(help_text="ISO 8601 with offset, on the campaign's clock.")
    title = serializers.CharField()


class AccountDetailSerializer(AccountSerializer):
    events = serializers.SerializerMethodField()

    class Meta(AccountSerializer.Meta):
        fields = [*AccountSerializer.Meta.fields, "events"]
        read_only_fields = fields

    @extend_schema_field(AccountEventSerializer(many=True))
    def get_events(self, account: Account) -> list[dict[str, Any]]:
        timeline = selectors.client_timeline(client_id=account.client_id)
        return [
            {"kind": EVENT_KINDS.get(e.kind, e.kind), "at": e.at.isoformat(), "title": e.title} | _event_fields(e)
            for e in timeline.events
        ]


class AccountFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Account.Status.choices, distinct=False)
    segment = django_filters.CharFilter(field_name="segment__name", help_text="Segment name, e.g. 'RED Initial'.")
    owner = django_filters.CharFilter()
    search = django_filters.CharFilter(method="filter_search", help_text="A client id, or a phone number in any spelling.")

    class Meta:
        model = Account
        fields = ["status", "segment", "owner", "search"]

    def filter_search(self, queryset: QuerySet[Account], name: str, value: str) -> QuerySet[Account]:
        value = value.strip()
        digits = "".join(ch for ch in value if ch.isdigit())
        phones = {value}
        if digits:
            phones |= {f"+{digits}", f"+1{digits}"}
        return queryset.filter(Q(client_id=value) | Q(phone__in=phones) | Q(phones__phone__in=phones)).distinct()


@extend_schema(tags=["accounts"])
class AccountViewSet(viewsets.ReadOnlyModelViewSet):
    """Every client the warehouse or an upload has named, with their story in `GET /api/accounts/{client_id}/`."""

    queryset = Account.objects.select_related("segment").order_by("client_id")
    permission_classes = [ByRole]
    read_permission = roles.VIEW_CAMPAIGNS
    write_permission = roles.CONTROL_CAMPAIGNS
    filter_backends = [DjangoFilterBackend]
    filterset_class = AccountFilter
    lookup_field = "client_id"
    lookup_value_regex = "[^/]+"

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return AccountDetailSerializer if self.action == "retrieve" else AccountSerializer

    @extend_schema(responses=AccountDetailSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)


router = SimpleRouter()
router.register("accounts", AccountViewSet, basename="campaigns-api-account")
account_urlpatterns = [path("", include(router.urls))]
