from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-billing-dialer"


class Command(BaseCommand):
    help = "Prepares the local demo: a login with every role, printed at the end."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clients", type=int, default=2000, help="Clients in the sample warehouse.")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        user.groups.add(*Group.objects.filter(name__in=["Billing managers", "Supervisors"]))
        self.stdout.write(self.style.SUCCESS("Billing Dialer is starting at http://127.0.0.1:8000/"))
        self.stdout.write(f"  demo login: {DEMO_USERNAME} / {DEMO_PASSWORD}")
