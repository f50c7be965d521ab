"""The SFTP folders in the admin, as a billing manager meets them: a password or private key can be
set but is never shown back, the host key is checked, and a connection can be tried from the list."""

from __future__ import annotations

from typing import Any

import asyncssh
import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import SftpDestination, SftpSource

from .dashboard_factories import billing_manager, supervisor
from .sftp_server import PASSWORD, USERNAME, SftpTestServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(client: Client) -> Client:
    client.force_login(billing_manager())
    return client


def form_data(server: SftpTestServer, **overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Acme drop", "enabled": "on", "poll_minutes": "5", "host": "127.0.0.1", "port": str(server.port),
        "username": USERNAME, "host_key": server.host_key_line, "path": "/inbox", "password": "", "private_key": "",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_a_billing_manager_adds_an_intake_folder_and_its_key_is_never_shown_back(manager_client: Client, sftp_server: SftpTestServer) -> None:
    key = sftp_server.client_private_key
    response = manager_client.post(reverse("admin:campaigns_sftpsource_add"), form_data(sftp_server, private_key=key))
    assert response.status_code == 302, response.content.decode()[:2000]
    source = SftpSource.objects.get()
    assert source.private_key.strip() == key.strip()
    # Sealed at rest: neither the key nor a line of it is in the row.
    assert key.splitlines()[1] not in source.private_key_sealed and source.password_sealed == ""

    page = manager_client.get(reverse("admin:campaigns_sftpsource_change", args=[source.pk])).content.decode()
    assert "a private key" in page  # what is stored, in words
    for line in key.strip().splitlines()[1:-1]:  # the key's body (its first line is in the help text)
        assert line not in page
    assert source.private_key_sealed not in page

    # Saving again with the secret fields empty keeps what is stored; a password can be added.
    response = manager_client.post(
        reverse("admin:campaigns_sftpsource_change", args=[source.pk]), form_data(sftp_server, poll_minutes="10", password=PASSWORD)
    )
    assert response.status_code == 302
    source.refresh_from_db()
    assert source.poll_minutes == 10 and source.private_key.strip() == key.strip() and source.password == PASSWORD
    page = manager_client.get(reverse("admin:campaigns_sftpsource_change", args=[source.pk])).content.decode()
    assert PASSWORD not in page and "a password and a private key" in page

    response = manager_client.post(
        reverse("admin:campaigns_sftpsource_change", args=[source.pk]), form_data(sftp_server, remove_private_key="on")
    )
    source.refresh_from_db()
    assert source.private_key == "" and source.password == PASSWORD


def test_a_bad_host_key_a_bad_private_key_or_no_credentials_are_refused_in_plain_words(
    manager_client: Client, sftp_server: SftpTestServer
) -> None:
    url = reverse("admin:campaigns_sftpdestination_add")
    page = manager_client.post(url, form_data(sftp_server, host_key="not a key", password=PASSWORD)).content.decode()
    assert "The host key must look like" in page
    page = manager_client.post(url, form_data(sftp_server, private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n")).content.decode()
    assert "The private key could not be read" in page
    page = manager_client.post(url, form_data(sftp_server)).content.decode()
    assert "Enter a private key or a password" in page
    assert not SftpDestination.objects.exists()


def test_check_the_connection_says_whether_the_server_lets_us_in(manager_client: Client, sftp_server: SftpTestServer) -> None:
    (sftp_server.root / "inbox").mkdir()
    good = SftpSource(name="Good", host="127.0.0.1", port=sftp_server.port, username=USERNAME, host_key=sftp_server.host_key_line, path="/inbox")
    good.password = PASSWORD
    good.save()
    wrong = SftpSource(name="Wrong key", host="127.0.0.1", port=sftp_server.port, username=USERNAME, path="/inbox",
                       host_key=asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode())  # fmt: skip
    wrong.password = PASSWORD
    wrong.save()
    response = manager_client.post(
        reverse("admin:campaigns_sftpsource_changelist"),
        {"action": "check_connection", "_selected_action": [good.pk, wrong.pk]},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("Good: connected, host key matches") for m in messages), messages
    assert any(m.startswith("Wrong key: sftp: partner@127.0.0.1") and "not the stored one" in m for m in messages), messages


def test_a_supervisor_sees_the_folders_but_cannot_change_them(client: Client) -> None:
    client.force_login(supervisor())
    assert client.get(reverse("admin:campaigns_sftpsource_changelist")).status_code == 200
    assert client.get(reverse("admin:campaigns_sftpsource_add")).status_code == 403
