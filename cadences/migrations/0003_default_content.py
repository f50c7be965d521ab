"""The shipped content: five segments with their cadences, the SMS templates, the settings row
and the Massachusetts call limit. The generator lives in `cadences.defaults` so it is tested and
reused by `manage.py reset_default_cadences`; it only sets fields that exist at this migration.
"""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from cadences.defaults import install_default_content


def install(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    install_default_content(
        segment_model=apps.get_model("cadences", "Segment"),
        step_model=apps.get_model("cadences", "CadenceStep"),
        template_model=apps.get_model("cadences", "SmsTemplate"),
        settings_model=apps.get_model("cadences", "DialerSettings"),
        state_limit_model=apps.get_model("cadences", "StateCallLimit"),
    )


class Migration(migrations.Migration):
    dependencies = [("cadences", "0002_segment_validation_settings_single_row")]

    # Reversing leaves the content in place: deleting it could take staff edits with it.
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
