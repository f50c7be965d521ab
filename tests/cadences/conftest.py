from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from cadences.roles import BILLING_MANAGERS, SUPERVISORS


def _staff_client(username: str, group: str) -> Client:
    user = get_user_model().objects.create_user(username=username, password="not-used", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def billing_manager_client(db: None) -> Client:
    return _staff_client("bianca", BILLING_MANAGERS)


@pytest.fixture
def supervisor_client(db: None) -> Client:
    return _staff_client("sam", SUPERVISORS)
