"""A first history record ("created") for rows written by the earlier data migrations.

django-simple-history records changes through model signals, which historical models in a
migration do not send; without this, the first edit of shipped content would show no diff.
"""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps
from django.utils import timezone

from cadences.defaults import record_initial_history

MODELS = ("Segment", "CadenceStep", "SmsTemplate", "DialerSettings", "StateCallLimit")


def record(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    now = timezone.now()
    for name in MODELS:
        record_initial_history(
            model=apps.get_model("cadences", name),
            history_model=apps.get_model("cadences", f"Historical{name}"),
            when=now,
            reason="Shipped default content",
        )


class Migration(migrations.Migration):
    dependencies = [("cadences", "0004_roles")]

    operations = [migrations.RunPython(record, migrations.RunPython.noop)]
