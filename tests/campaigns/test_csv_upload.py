"""CSV upload in the campaign admin: same checks as the load, per-row errors, whole-file refusals."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.models import QueueItem, RejectedRow

from .conftest import client_row

HEADER = ["client_id", "name", "phone", "segment", "days_past_due", "ring_group", "amount_due", "state", "email"]


def csv_file(rows: list[dict], *, header: list[str] = HEADER, name: str = "clients.csv") -> SimpleUploadedFile:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in header])
    return SimpleUploadedFile(name, buffer.getvalue().encode("utf-8"), content_type="text/csv")


@pytest.fixture
def supervisor(db):
    user = get_user_model().objects.create_user("sup", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Supervisors"))
    return user


@pytest.fixture
def staff_client(client, supervisor):
    client.force_login(supervisor)
    return client


def upload(staff_client, campaign, file):
    url = reverse("admin:campaigns_campaign_upload", args=[campaign.pk])
    return staff_client.post(url, {"file": file}, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.django_db
def test_a_good_file_queues_its_clients_and_reports_bad_rows_by_line(staff_client, campaign):
    good = client_row(days_past_due=1)
    bad_phone = client_row(phone="555-0100")
    unknown_segment = client_row(segment="Gold Premium")
    no_step = client_row(days_past_due=2)
    good_two = client_row(days_past_due=12, state="Texas")

    response = upload(staff_client, campaign, csv_file([good, bad_phone, unknown_segment, no_step, good_two]))

    assert response.redirect_chain[-1][0] == reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    items = {i.client_id: i for i in QueueItem.objects.filter(campaign=campaign)}
    assert set(items) == {good["client_id"], good_two["client_id"]}
    assert items[good["client_id"]].source == "csv"
    assert items[good_two["client_id"]].timezone_list == ["America/Chicago", "America/Denver"]
    rejected = list(RejectedRow.objects.filter(campaign=campaign).values_list("source", "row_number", "client_id", "reason"))
    # Line numbers count the header as line 1.
    assert rejected == [
        ("csv", 3, bad_phone["client_id"], "phone '555-0100' is not a valid number"),
        ("csv", 4, unknown_segment["client_id"], "unknown segment 'Gold Premium'"),
    ]
    text = " ".join(messages_of(response))
    assert "5 rows read, 2 queued, 2 rejected, 1 with no touchpoint today" in text
    # The campaign page lists them.
    content = response.content.decode()
    assert "unknown segment" in content and "is not a valid number" in content


@pytest.mark.django_db
def test_a_client_already_queued_is_reported_not_doubled(staff_client, campaign):
    row = client_row()
    upload(staff_client, campaign, csv_file([row]))

    response = upload(staff_client, campaign, csv_file([row]))

    assert QueueItem.objects.filter(campaign=campaign, client_id=row["client_id"]).count() == 1
    assert RejectedRow.objects.get(campaign=campaign).reason == f"client_id '{row['client_id']}' is already queued in this campaign"
    assert "0 queued, 1 rejected" in " ".join(messages_of(response))


@pytest.mark.django_db
def test_a_row_with_missing_fields_or_extra_fields_is_rejected_and_the_rest_load(staff_client, campaign):
    good = client_row()
    content = (
        ",".join(HEADER)
        + "\n"
        + ",".join(str(good[c]) for c in HEADER)
        + "\nT-SHORT,Pat Short\n"
        + "T-LONG,Pat Long,+12125550150,RED Initial,1,billing,10,NY,a@example.com,surplus\n"
    )

    upload(staff_client, campaign, SimpleUploadedFile("mixed.csv", content.encode()))

    assert list(QueueItem.objects.filter(campaign=campaign).values_list("client_id", flat=True)) == [good["client_id"]]
    reasons = dict(RejectedRow.objects.filter(campaign=campaign).values_list("client_id", "reason"))
    assert reasons["T-SHORT"] == "missing columns: phone, segment, days_past_due, ring_group"
    assert reasons["T-LONG"] == "the line has 1 more field(s) than the header"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "file, message",
    [
        (SimpleUploadedFile("clients.xlsx", b"PK\x03\x04\x14\x00binary"), "is not a CSV file (expected a .csv file)"),
        (SimpleUploadedFile("clients.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "binary data; it is not a CSV file"),
        (SimpleUploadedFile("clients.csv", "client_id,name\n1,Zoë".encode("utf-16")), "not a CSV file"),
        (SimpleUploadedFile("clients.csv", b"\xff\xfeclient_id;name"), "is not UTF-8 text"),
        (SimpleUploadedFile("clients.csv", b"just some words\nand more words\n"), "not a CSV header"),
        # An empty sheet saved as "CSV UTF-8" is a byte-order mark alone (a 500 before).
        (SimpleUploadedFile("clients.csv", b"\xef\xbb\xbf"), "The file is empty."),
        (SimpleUploadedFile("clients.csv", b"\xef\xbb\xbf\r\n \r\n"), "The file is empty."),
        (SimpleUploadedFile("clients.csv", b"client_id,name,phone\nT1,Pat,2125550100\n"), "lacks the required column(s): segment, days_past_due, ring_group"),
        (SimpleUploadedFile("clients.csv", b'client_id,name,phone,segment,days_past_due,ring_group\nT1,"Pat\n'), "not valid CSV"),
    ],
)
def test_a_file_that_is_not_usable_csv_loads_nothing_and_says_why(staff_client, campaign, file, message):
    response = upload(staff_client, campaign, file)

    assert not QueueItem.objects.filter(campaign=campaign).exists()
    assert not RejectedRow.objects.filter(campaign=campaign).exists()
    texts = messages_of(response)
    assert any("Nothing was loaded" in t and message in t for t in texts), texts


@pytest.mark.django_db
def test_a_structural_error_late_in_the_file_loads_nothing(staff_client, campaign):
    good = client_row()
    broken = csv_file([good]).read() + b'T9,"unterminated\n'

    upload(staff_client, campaign, SimpleUploadedFile("clients.csv", broken))

    # The structure is checked before any row is queued.
    assert not QueueItem.objects.filter(campaign=campaign).exists()


@pytest.mark.django_db
def test_staff_without_change_permission_cannot_upload(client, campaign):
    manager = get_user_model().objects.create_user("mgr", password="pw", is_staff=True)
    manager.groups.add(Group.objects.get(name="Billing managers"))
    client.force_login(manager)

    response = client.post(reverse("admin:campaigns_campaign_upload", args=[campaign.pk]), {"file": csv_file([client_row()])})

    assert response.status_code == 403
    assert not QueueItem.objects.filter(campaign=campaign).exists()


@pytest.mark.django_db
def test_the_upload_page_shows_the_expected_columns(staff_client, campaign):
    response = staff_client.get(reverse("admin:campaigns_campaign_upload", args=[campaign.pk]))

    assert response.status_code == 200
    assert "client_id, name, phone, segment, days_past_due, ring_group" in response.content.decode()
