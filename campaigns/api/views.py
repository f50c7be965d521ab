"""The REST API under /api/: campaigns and their controls, queue items, follow-up tasks, KPIs.

Session and token authentication (settings.REST_FRAMEWORK). Permissions follow the roles:
reading needs the model's view permission (supervisors and billing managers), controlling a
campaign or working a follow-up task needs the change permission (supervisors). The OpenAPI
schema is at /api/schema/ and browsable documentation at /api/docs/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.urls import include, path
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from access import services as access_services
from access.forms import client_ip
from cadences.models import Phase
from campaigns import roles
from campaigns.api import schema as api_schema
from campaigns.compliance import gate as compliance
from campaigns.dashboard import selectors
from campaigns.metrics import payments as payment_kpis
from campaigns.models import Campaign, FollowUpTask, QueueItem
from campaigns.lifecycle import campaign as lifecycle
from integrations import clock

log = logging.getLogger(__name__)


class ByRole(BasePermission):
    """The view declares which permission reads need and which writes need; the API is for
    staff, like the admin, whatever permissions an account was given."""

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = view.read_permission if request.method in SAFE_METHODS else view.write_permission
        return bool(getattr(request.user, "is_staff", False)) and roles.has(request.user, needed)


# --- campaigns ------------------------------------------------------------------------------


class CampaignSerializer(serializers.ModelSerializer):
    status_display = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id", "date", "status", "status_display", "is_sandbox", "created_at",
            "batch_size", "release_threshold", "poll_interval_seconds", "batch_timeout_seconds",
            "calling_window_start", "calling_window_end", "end_of_day",
            "load_started_at", "load_finished_at", "started_at", "stopped_at", "flushed_at", "last_revalidated_at",
            "load_error", "flush_error", "halt_reason",
            "rows_read", "rows_inserted", "rows_rejected", "rows_no_touchpoint",
            "calls_placed", "answered", "voicemail", "transferred", "no_answer", "failed",
            "sms_sent", "sms_failed", "skipped", "ineligible", "flushed_rows",
        ]
        read_only_fields = fields


class RingGroupSerializer(serializers.Serializer):
    ring_group = serializers.CharField()
    free_agents = serializers.IntegerField(allow_null=True, help_text="From the availability API (cached a few seconds); null while the campaign is not running.")
    in_flight = serializers.IntegerField()
    queued = serializers.IntegerField()
    done = serializers.IntegerField()


class SkipReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()
    reason_display = serializers.CharField()
    count = serializers.IntegerField()


class LiveStatusSerializer(serializers.Serializer):
    total_items = serializers.IntegerField()
    counters = serializers.DictField(child=serializers.IntegerField())
    skipped_by_reason = SkipReasonSerializer(many=True)
    ring_groups = RingGroupSerializer(many=True)


class CampaignDetailSerializer(CampaignSerializer):
    live = serializers.SerializerMethodField()

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "live"]
        read_only_fields = fields

    @extend_schema_field(LiveStatusSerializer)
    def get_live(self, campaign: Campaign) -> dict[str, Any]:
        status_ = selectors.campaign_status(campaign=campaign).as_dict()
        return {key: status_[key] for key in ("total_items", "counters", "skipped_by_reason", "ring_groups")}


class CampaignCreateSerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The campaign's day; one campaign per date.")

    def validate_date(self, value: Any) -> Any:
        if value < selectors.today():
            raise serializers.ValidationError("A campaign cannot be created for a day that has passed.")
        return value


class CampaignViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Campaigns, newest first; the detail adds the live counters. POST creates the campaign of a
    date (or answers the existing one); start/pause/resume/stop act."""

    queryset = Campaign.objects.order_by("-date")
    permission_classes = [ByRole]
    read_permission = roles.VIEW_CAMPAIGNS
    write_permission = roles.CONTROL_CAMPAIGNS
    filter_backends = [DjangoFilterBackend]
    filterset_fields = {"status": ["exact"], "date": ["exact", "gte", "lte"]}

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if self.action == "create":
            return CampaignCreateSerializer
        return CampaignDetailSerializer if self.action == "retrieve" else CampaignSerializer

    @extend_schema(
        request=CampaignCreateSerializer,
        responses={201: CampaignSerializer, 200: OpenApiResponse(CampaignSerializer, description="The date's campaign existed already.")},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A draft campaign for the date, with today's release settings; start it to load its queue."""
        form = CampaignCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        date = form.validated_data["date"]
        existed = Campaign.objects.filter(date=date).exists()
        campaign = lifecycle.campaign_create(date=date, user=request.user)
        log.info("campaign control", extra={"campaign_id": campaign.pk, "action": "create", "user": request.user.get_username(), "via": "api"})
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    def _control(self, request: Request, name: str) -> Response:
        campaign = self.get_object()
        try:
            CONTROL_ACTIONS[name](campaign=campaign, user=request.user)
        except lifecycle.CampaignStateError as exc:
            return Response({"detail": str(exc), "status": campaign.status}, status=status.HTTP_409_CONFLICT)
        log.info("campaign control", extra={"campaign_id": campaign.pk, "action": name, "user": request.user.get_username(), "via": "api"})
        campaign.refresh_from_db()
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(request=None, responses={200: CampaignSerializer, 409: OpenApiResponse(description="Not allowed in the campaign's status.")})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        """Draft → loading → running: the queue loads in the background."""
        return self._control(request, "start")

    @extend_schema(request=None, responses={200: CampaignSerializer, 409: OpenApiResponse(description="Not running.")})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """Running → paused: no new calls are released."""
        return self._control(request, "pause")

    @extend_schema(request=None, responses={200: CampaignSerializer, 409: OpenApiResponse(description="Not paused.")})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Paused → running."""
        return self._control(request, "resume")

    @extend_schema(request=None, responses={200: CampaignSerializer, 409: OpenApiResponse(description="Already stopping, stopped or flushed.")})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        """→ stopping → stopped → history flushed to the warehouse, then the queue is cleaned up."""
        return self._control(request, "stop")


CONTROL_ACTIONS: dict[str, Callable[..., Campaign]] = {
    "start": lifecycle.campaign_start,
    "pause": lifecycle.campaign_pause,
    "resume": lifecycle.campaign_resume,
    "stop": lifecycle.campaign_stop,
}


# --- queue items ----------------------------------------------------------------------------


class QueueItemSerializer(serializers.ModelSerializer):
    campaign_date = serializers.DateField(source="campaign.date", read_only=True)
    segment = serializers.CharField(source="segment.name", read_only=True)
    # Each code beside its words (the code is for machines, the words for people).
    phase_display = serializers.CharField(source="get_phase_display", read_only=True)
    action_type_display = serializers.CharField(source="get_action_type_display", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    skip_reason_display = serializers.SerializerMethodField(help_text="The skip reason in words; empty when not skipped.")
    last_outcome_display = serializers.CharField(source="get_last_outcome_display", read_only=True)
    sms_status_display = serializers.CharField(source="get_sms_status_display", read_only=True)

    class Meta:
        model = QueueItem
        fields = [
            "id", "campaign", "campaign_date", "client_id", "client_name", "phone", "segment", "phase", "phase_display",
            "days_past_due", "action_type", "action_type_display", "team", "ring_group", "transfer_number", "inbox_id",
            "amount_due", "state", "timezones", "status", "status_display", "status_changed_at", "skip_reason",
            "skip_reason_display", "skip_detail", "next_attempt_at", "call_attempts", "last_outcome", "last_outcome_display",
            "sms_status", "sms_status_display", "sms_due_at", "created_at",
        ]
        read_only_fields = fields

    def get_skip_reason_display(self, item: QueueItem) -> str:
        return compliance.rule_label(item.skip_reason) if item.skip_reason else ""


class QueueItemFilter(django_filters.FilterSet):
    # distinct=False: the filter joins nothing that could repeat a row, and DISTINCT over a
    # 100k-item day would sort every matching row.
    status = django_filters.MultipleChoiceFilter(choices=QueueItem.Status.choices, distinct=False, help_text="Repeat for several.")
    ring_group = django_filters.CharFilter()
    segment = django_filters.CharFilter(field_name="segment__name", help_text="Segment name, e.g. 'RED Initial'.")
    phase = django_filters.ChoiceFilter(choices=Phase.choices)
    client_id = django_filters.CharFilter()
    campaign = django_filters.NumberFilter(field_name="campaign_id")
    date = django_filters.DateFilter(field_name="campaign__date", help_text="The campaign's date.")
    skip_reason = django_filters.CharFilter()

    class Meta:
        model = QueueItem
        fields = ["status", "ring_group", "segment", "phase", "client_id", "campaign", "date", "skip_reason"]


class QueueItemViewSet(viewsets.ReadOnlyModelViewSet):
    """The day's touchpoints, filtered by status, ring group, segment, phase, client or campaign."""

    queryset = QueueItem.objects.select_related("campaign", "segment").order_by("pk")
    serializer_class = QueueItemSerializer
    permission_classes = [ByRole]
    read_permission = roles.VIEW_QUEUE_ITEMS
    write_permission = roles.CONTROL_CAMPAIGNS
    filter_backends = [DjangoFilterBackend]
    filterset_class = QueueItemFilter


# --- follow-up tasks ------------------------------------------------------------------------


class FollowUpTaskSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        allow_null=True,
        required=False,
        help_text="Username of the person who works the task; null to unassign.",
    )

    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = FollowUpTask
        fields = [
            "id", "kind", "kind_display", "status", "status_display", "team", "client_id", "client_name", "phone", "owner", "owner_name",
            "routed_by",
            "due_at", "detail", "source_ref", "created_at", "resolved_at",
        ]
        read_only_fields = [f for f in fields if f not in ("status", "owner")]

    def update(self, instance: FollowUpTask, validated_data: dict[str, Any]) -> FollowUpTask:
        new_status = validated_data.get("status", instance.status)
        # Done records when; reopening clears it, so "resolved" always means done now.
        if new_status == FollowUpTask.Status.DONE and instance.status != FollowUpTask.Status.DONE:
            validated_data["resolved_at"] = clock.now()
        elif new_status != FollowUpTask.Status.DONE:
            validated_data["resolved_at"] = None
        return super().update(instance, validated_data)


class StrictNullBooleanField(forms.NullBooleanField):
    """true or false (or nothing); django-filter's own field reads any other word as "not
    filtered", so a typo would silently answer every row."""

    widget = forms.TextInput

    def to_python(self, value: Any) -> bool | None:  # type: ignore[override]  # None is "not given"
        if value in (None, ""):
            return None
        if value in (True, "True", "true", "1"):
            return True
        if value in (False, "False", "false", "0"):
            return False
        raise forms.ValidationError("Enter true or false.", code="invalid")

    def validate(self, value: Any) -> None:
        return None


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictNullBooleanField


class FollowUpTaskFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=FollowUpTask.Status.choices, distinct=False)
    kind = django_filters.MultipleChoiceFilter(choices=FollowUpTask.Kind.choices, distinct=False)
    owner = django_filters.CharFilter(field_name="owner__username", help_text="Username.")
    unassigned = StrictBooleanFilter(field_name="owner", lookup_expr="isnull")
    team = django_filters.CharFilter()
    client_id = django_filters.CharFilter()

    class Meta:
        model = FollowUpTask
        fields = ["status", "kind", "owner", "unassigned", "team", "client_id"]


class FollowUpTaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Human-owned follow-ups (disputes, hardship, callbacks…), soonest due first; PATCH status or owner."""

    queryset = FollowUpTask.objects.select_related("owner").order_by("due_at", "pk")
    serializer_class = FollowUpTaskSerializer
    permission_classes = [ByRole]
    read_permission = roles.VIEW_FOLLOW_UP_TASKS
    write_permission = roles.CHANGE_FOLLOW_UP_TASKS
    filter_backends = [DjangoFilterBackend]
    filterset_class = FollowUpTaskFilter

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        task = serializer.save()
        log.info(
            "follow-up task updated",
            extra={"task_id": task.pk, "status": task.status, "owner": task.owner.get_username() if task.owner else "", "user": self.request.user.get_username()},
        )


# --- KPIs -----------------------------------------------------------------------------------


class KpiRowSerializer(serializers.Serializer):
    segment = serializers.CharField()
    phase = serializers.CharField()
    figures = serializers.DictField(help_text="Counts, and amounts as decimal strings.")
    rates = serializers.DictField(child=serializers.FloatField(allow_null=True), help_text="null where the denominator is zero.")


class KpiTableSerializer(serializers.Serializer):
    title = serializers.CharField()
    since = serializers.DateField()
    until = serializers.DateField()
    rows = KpiRowSerializer(many=True)
    total = KpiRowSerializer()


class KpisSerializer(serializers.Serializer):
    today = KpiTableSerializer()
    last_7_days = KpiTableSerializer()
    last_30_days = KpiTableSerializer()
    trend = serializers.DictField(help_text="Daily rates over the last 30 days: dates, rates[{key, label, values}], amounts.")


class KpiView(APIView):
    """KPIs by segment and phase: today (live), and the last 7 and 30 days from the daily KPI table."""

    permission_classes = [ByRole]
    read_permission = roles.VIEW_KPIS
    write_permission = roles.VIEW_KPIS

    @extend_schema(
        parameters=[
            OpenApiParameter("segment", str, description="Segment name, e.g. 'RED Initial'."),
            OpenApiParameter("phase", str, enum=Phase.values),
        ],
        responses={200: KpisSerializer, 400: api_schema.INVALID},
    )
    def get(self, request: Request) -> Response:
        segment = request.query_params.get("segment", "")
        phase = request.query_params.get("phase", "")
        if phase and phase not in Phase.values:
            return Response({"phase": [f"Unknown phase {phase!r}; one of {', '.join(Phase.values)}."]}, status=status.HTTP_400_BAD_REQUEST)
        date = selectors.today()
        return Response(
            {
                "today": selectors.kpis_for_day(date=date, segment=segment, phase=phase).as_dict(),
                "last_7_days": selectors.kpis_for_window(until=date, days=7, segment=segment, phase=phase).as_dict(),
                "last_30_days": selectors.kpis_for_window(until=date, days=30, segment=segment, phase=phase).as_dict(),
                "trend": selectors.kpi_trend(until=date, days=30, segment=segment, phase=phase),
            }
        )


class PaymentKpiTableSerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField()
    by = serializers.ChoiceField(choices=payment_kpis.DIMENSIONS)
    rows = serializers.ListField(child=serializers.DictField(), help_text="One per value of `by` (`display`: that value in words): amounts as decimal strings, rates null where the denominator is zero.")
    total = serializers.DictField()


class PaymentKpisSerializer(serializers.Serializer):
    today = PaymentKpiTableSerializer()
    last_7_days = PaymentKpiTableSerializer()
    last_30_days = PaymentKpiTableSerializer()


class PaymentKpiView(APIView):
    """KPIs from real money (amount recovered, promise kept rate, link open and completion rates,
    days-overdue improvement, cost per dollar recovered) by segment, phase, owner or source: today,
    and the last 7 and 30 days."""

    permission_classes = [ByRole]
    read_permission = roles.VIEW_KPIS
    write_permission = roles.VIEW_KPIS

    @extend_schema(
        parameters=[OpenApiParameter("by", str, enum=list(payment_kpis.DIMENSIONS), description="The grouping (default segment).")],
        responses={200: PaymentKpisSerializer, 400: api_schema.INVALID},
    )
    def get(self, request: Request) -> Response:
        by = request.query_params.get("by", "segment")
        if by not in payment_kpis.DIMENSIONS:
            return Response({"by": [f"Unknown grouping {by!r}; one of {', '.join(payment_kpis.DIMENSIONS)}."]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(payment_kpis.payment_kpi_windows(date=selectors.today(), by=by))


# --- routes ---------------------------------------------------------------------------------


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")


class TokenView(ObtainAuthToken):
    """POST username and password; answers {"token": ...} for `Authorization: Token <token>`.

    Only staff in a role (who may use the API at all) get a token. Wrong credentials are a 401,
    as for every other endpoint; missing ones a 400. Guessing passwords here is throttled exactly
    like the sign-in page (429 while paused).
    """

    # ObtainAuthToken names DRF's own parsers; the API's strict JSON parser applies here too.
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES
    # The request is the credentials: a stale `Authorization` header must not refuse it.
    authentication_classes = ()

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: TokenSerializer,
            400: api_schema.INVALID,
            401: api_schema.error("The username and password do not match an active account."),
            403: api_schema.error("The account is not staff in a role (Supervisors or Billing managers): it may not use the API."),
            415: api_schema.UNSUPPORTED_MEDIA,
            429: api_schema.error("Too many failed sign-ins for this username or address; try again later."),
        },
        auth=[],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data if isinstance(request.data, Mapping) else {}
        username = str(data.get("username") or "")[:150]
        ip = client_ip(request)
        now = timezone.now()
        throttle = access_services.login_throttle_check(username=username, ip=ip, now=now)
        if throttle is not None:
            return Response(
                {"detail": f"Too many failed sign-in attempts; try again in {throttle.minutes} minute(s)."},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            if not (isinstance(request.data, Mapping) and set(serializer.errors) == {"non_field_errors"}):
                return Response(serializer.errors, status=status.HTTP_400_BAD_REQUEST)  # not credentials at all: not a guess
            access_services.login_failure_record(username=username, ip=ip, now=now)
            return Response(
                {"detail": "Unable to log in with provided credentials."},
                status=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": 'Token realm="api"'},
            )
        user = serializer.validated_data["user"]
        # The right password for an account that may not use the API is not a guess either.
        if not roles.has_api_role(user):
            return Response({"detail": "Only staff in a role (Supervisors or Billing managers) may use the API."}, status=status.HTTP_403_FORBIDDEN)
        access_services.login_success_record(username=username)
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


router = DefaultRouter()
router.register("campaigns", CampaignViewSet, basename="campaigns-api-campaign")
router.register("queue-items", QueueItemViewSet, basename="campaigns-api-queue-item")
router.register("follow-up-tasks", FollowUpTaskViewSet, basename="campaigns-api-follow-up-task")

api_urlpatterns = [
    path("kpis/", KpiView.as_view(), name="campaigns-api-kpis"),
    path("kpis/payments/", PaymentKpiView.as_view(), name="campaigns-api-payment-kpis"),
    path("token/", TokenView.as_view(), name="campaigns-api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="campaigns-api-schema"),
    # The split view serves Swagger UI's set-up script as a file of its own, not inline: the
    # content security policy runs no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="campaigns-api-schema"), name="campaigns-api-docs"),
    path("", include(router.urls)),
]

