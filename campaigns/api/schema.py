"""The API's OpenAPI schema lists every status an endpoint answers, not only its success.

drf-spectacular documents the success answer of each operation; the errors DRF itself produces
are the same everywhere and are added here, so a client (and the schemathesis run in `make
check`) can rely on the schema for all of them:

- 401 — no credentials, or a token that is not valid (`WWW-Authenticate: Token` says how to
  authenticate); 403 — authenticated, but the role does not allow it;
- 404 — no object at that id, or a page past the last one on a list;
- 400 — a request body, or on a list a filter value, that is not valid;
- 415 — a request body in a media type the API does not read.

An operation may declare others itself (`@extend_schema(responses=...)`: 409 for a campaign
control in the wrong state, 429 for a throttled token request); those are kept as declared.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person.")


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


# A 400 is either {"detail": "..."} (a body that is not JSON) or the messages per field.
INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="Not valid: `detail` for a body that cannot be read, otherwise a list of messages per field (`non_field_errors` for the whole).",
)
UNAUTHENTICATED = error("No credentials, or credentials that are not valid. `WWW-Authenticate: Token` says how to authenticate.")
FORBIDDEN = error("Authenticated, but the role does not allow this.")
NOT_FOUND = error("No such object (or, on a list, a page past the last one).")
UNSUPPORTED_MEDIA = error("The body is not in a media type the API reads (JSON, form or multipart).")


# A time of day as DRF writes it ("21:30:00"): local, so with no offset — which JSON Schema's
# "time" format requires, so the schema says what is actually sent.
LOCAL_TIME: dict[str, Any] = {
    "type": "string",
    "format": "partial-time",
    "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$",
    "example": "21:30:00",
}


class ApiSchema(AutoSchema):
    def _map_serializer_field(self, field: Any, direction: Any, bypass_extensions: bool = False) -> dict[str, Any]:
        if isinstance(field, serializers.TimeField):
            mapped = dict(LOCAL_TIME)
            if field.read_only:
                mapped["readOnly"] = True
            return mapped
        return super()._map_serializer_field(field, direction, bypass_extensions)  # type: ignore[no-any-return]

    def _get_parameters(self) -> list[dict[str, Any]]:
        # The API reads an empty query value as "not given" (django-filter does, and the browsable
        # API's filter form sends every field, filled or not); the schema says so rather than
        # calling it invalid. A page number is the exception: an empty one is a 404.
        parameters: list[dict[str, Any]] = super()._get_parameters()
        for parameter in parameters:
            if parameter.get("in") == "query" and parameter.get("name") != "page":
                parameter["allowEmptyValue"] = True
        return parameters

    def _error_responses(self) -> dict[str, OpenApiResponse]:
        errors: dict[str, OpenApiResponse] = {}
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            errors["401"] = UNAUTHENTICATED
            errors["403"] = FORBIDDEN
        if "{" in self.path:
            errors["404"] = NOT_FOUND
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors["400"] = INVALID
            errors["415"] = UNSUPPORTED_MEDIA
        elif self.method == "GET" and self._is_list_view():
            errors["400"] = INVALID
            if self._get_paginator() is not None:
                errors["404"] = NOT_FOUND
        return errors

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction=direction)
        if direction != "response":
            return responses
        for code, response in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses
