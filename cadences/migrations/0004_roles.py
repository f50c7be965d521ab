"""The "Billing managers" and "Supervisors" groups with their permissions (see cadences.roles)."""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from cadences.roles import roles_install


def install(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    roles_install(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("cadences", "0003_default_content"),
        ("campaigns", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
