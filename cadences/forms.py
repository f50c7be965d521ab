"""Form fields the admin pages share."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin import widgets
from django.db import models


def normalise_line_endings(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class MultilineTextField(forms.CharField):
    """A textarea's text, kept with the line endings the database holds (LF).

    Browsers submit a textarea with CRLF line endings, so without this a page saved with one
    other change rewrote every prompt and template on it (a 1,201-character prompt came back
    1,207 characters long) and recorded them all as changed.
    """

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        return normalise_line_endings(value) if isinstance(value, str) else value

    def has_changed(self, initial: Any, data: Any) -> bool:
        if isinstance(initial, str):
            initial = normalise_line_endings(initial)
            initial = initial.strip() if self.strip else initial
        return super().has_changed(initial, data)


# For `formfield_overrides`: the admin's usual textarea, read through `MultilineTextField`.
MULTILINE_TEXT: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.TextField: {"form_class": MultilineTextField, "widget": widgets.AdminTextareaWidget}
}
