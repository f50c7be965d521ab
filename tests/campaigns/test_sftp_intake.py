"""SFTP intake against a real SFTP server on loopback: files queued like an upload, once each,
moved with a result file, and nothing lost when the server is down or not the one we trust."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from django_q.models import Schedule

from campaigns import schedules
from campaigns.models import Alert, Campaign, IntakeFile, QueueItem, RejectedRow, SftpSource
from campaigns.queue import intake

from .conftest import NOW, client_row
from .sftp_server import PASSWORD, USERNAME, SftpTestServer

pytestmark = pytest.mark.django_db

HEADER = ["client_id", "name", "phone", "segment", "days_past_due", "ring_group", "amount_due", "state", "email"]


def csv_bytes(rows: list[dict[str, Any]], header: list[str] = HEADER) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in header])
    return buffer.getvalue().encode("utf-8")


def source_for(server: SftpTestServer, *, key: bool = True, password: str = "", host_key: str = "") -> SftpSource:
    source = SftpSource(
        name="Acme drop", host="127.0.0.1", port=server.port, username=USERNAME,
        host_key=host_key or server.host_key_line, path="/inbox",
    )  # fmt: skip
    if key:
        source.private_key = server.client_private_key
    source.password = password
    source.save()
    return source


@pytest.fixture
def inbox(sftp_server: SftpTestServer) -> Path:
    path = sftp_server.root / "inbox"
    path.mkdir()
    return path


def result_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_a_new_file_is_queued_like_an_upload_and_moved_to_processed_with_its_result(
    campaign: Campaign, sftp_server: SftpTestServer, inbox: Path
) -> None:
    good, good_two = client_row(days_past_due=1), client_row(days_past_due=12)
    bad_phone = client_row(phone="555-0100")
    (inbox / "clients.csv").write_bytes(csv_bytes([good, bad_phone, good_two]))
    source = source_for(sftp_server)

    report = intake.sftp_source_poll(source=source, now=NOW)

    assert report.loaded == ["clients.csv"] and report.error == ""
    items = {i.client_id: i for i in QueueItem.objects.filter(campaign=campaign)}
    assert set(items) == {good["client_id"], good_two["client_id"]}
    assert {i.source for i in items.values()} == {"sftp"}
    # The very same row checks as an admin upload, stored the same way.
    assert list(RejectedRow.objects.filter(campaign=campaign).values_list("source", "row_number", "client_id", "reason")) == [
        ("sftp", 3, bad_phone["client_id"], "phone '555-0100' is not a valid number")
    ]
    assert not (inbox / "clients.csv").exists()
    assert (inbox / "processed" / "clients.csv").read_bytes() == csv_bytes([good, bad_phone, good_two])
    assert result_rows(inbox / "processed" / "clients.csv.result.csv") == [
        {"line": "3", "client_id": bad_phone["client_id"], "reason": "phone '555-0100' is not a valid number"}
    ]
    recorded = IntakeFile.objects.get()
    assert (recorded.status, recorded.campaign, recorded.rows_read, recorded.rows_inserted, recorded.rows_rejected) == (
        "loaded", campaign, 3, 2, 1,
    )  # fmt: skip
    assert recorded.moved_to == "/inbox/processed/clients.csv"
    source.refresh_from_db()
    assert source.last_success_at == NOW and source.last_error == ""


def test_a_file_loads_once_however_often_it_is_polled_or_put_back(
    campaign: Campaign, sftp_server: SftpTestServer, inbox: Path
) -> None:
    data = csv_bytes([client_row(), client_row()])
    (inbox / "monday.csv").write_bytes(data)
    source = source_for(sftp_server)
    intake.sftp_source_poll(source=source, now=NOW)
    assert intake.sftp_source_poll(source=source, now=NOW + dt.timedelta(minutes=5)).loaded == []

    # The partner uploads the same file again, under another name.
    (inbox / "monday-again.csv").write_bytes(data)
    report = intake.sftp_source_poll(source=source, now=NOW + dt.timedelta(minutes=10))

    assert report.duplicates == ["monday-again.csv"] and report.loaded == []
    assert QueueItem.objects.filter(campaign=campaign).count() == 2
    assert IntakeFile.objects.count() == 1
    assert not RejectedRow.objects.exists()  # not reloaded: no "already queued" rejections either
    assert (inbox / "processed" / "monday-again.csv").read_bytes() == data
    [note] = result_rows(inbox / "processed" / "monday-again.csv.result.csv")
    assert "already received as monday.csv" in note["reason"]


def test_a_file_that_is_not_a_usable_csv_goes_to_failed_and_loads_nothing(
    campaign: Campaign, sftp_server: SftpTestServer, inbox: Path
) -> None:
    (inbox / "scan.pdf").write_bytes(b"%PDF-1.4 binary\x00stuff")
    (inbox / "no-phone.csv").write_bytes(csv_bytes([client_row()], header=["client_id", "name", "segment"]))
    (inbox / "broken.csv").write_bytes(",".join(HEADER).encode() + b'\n"T1,an unterminated quote\n')
    source = source_for(sftp_server)

    report = intake.sftp_source_poll(source=source, now=NOW)

    assert sorted(report.failed) == ["broken.csv", "no-phone.csv", "scan.pdf"]
    assert not QueueItem.objects.exists()
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == []
    for name, reason in (
        ("scan.pdf", "is not a CSV file"),
        ("no-phone.csv", "lacks the required column(s)"),
        ("broken.csv", "is not valid CSV"),
    ):
        assert (inbox / "failed" / name).exists()
        [row] = result_rows(inbox / "failed" / f"{name}.result.csv")
        assert row["reason"].startswith("Nothing was loaded:") and reason in row["reason"], row
        assert IntakeFile.objects.get(filename=name).status == IntakeFile.Status.FAILED


def test_a_host_key_that_is_not_the_stored_one_raises_an_alert_and_moves_nothing(
    campaign: Campaign, sftp_server: SftpTestServer, inbox: Path
) -> None:
    (inbox / "clients.csv").write_bytes(csv_bytes([client_row()]))
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    other_type = asyncssh.generate_private_key("ecdsa-sha2-nistp256").export_public_key().decode().strip()

    for pinned in (impostor, other_type):
        source = source_for(sftp_server, host_key=pinned)
        report = intake.sftp_source_poll(source=source, now=NOW)
        assert "host key" in report.error and "not the stored one" in report.error
        source.delete()

    assert sorted(p.name for p in inbox.iterdir()) == ["clients.csv"]
    assert not QueueItem.objects.exists() and not IntakeFile.objects.exists()
    alert = Alert.objects.get(source=intake.ALERT_SOURCE)
    assert alert.level == Alert.Level.ERROR and "host key" in alert.message


def test_a_refused_key_and_a_down_server_raise_an_alert_and_the_file_loads_at_the_next_poll(
    campaign: Campaign, sftp_server: SftpTestServer, inbox: Path
) -> None:
    (inbox / "clients.csv").write_bytes(csv_bytes([client_row(), client_row()]))
    source = source_for(sftp_server, key=False)
    source.private_key = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()  # not authorised
    source.save()
    report = intake.sftp_source_poll(source=source, now=NOW)
    assert "refused our key or password" in report.error

    source.private_key = ""
    source.password = PASSWORD
    source.save()
    sftp_server.stop()
    report = intake.sftp_source_poll(source=source, now=NOW + dt.timedelta(minutes=5))
    assert "could not connect" in report.error
    source.refresh_from_db()
    assert source.last_error == report.error and source.last_success_at is None
    assert Alert.objects.filter(source=intake.ALERT_SOURCE, message__contains="could not connect").exists()
    assert (inbox / "clients.csv").exists() and not QueueItem.objects.exists()

    sftp_server.start()  # back, on the same port
    report = intake.sftp_source_poll(source=source, now=NOW + dt.timedelta(minutes=10))
    assert report.loaded == ["clients.csv"]  # signed in with the password this time
    assert QueueItem.objects.filter(campaign=campaign).count() == 2


def test_a_file_waits_on_the_server_while_no_campaign_takes_clients(sftp_server: SftpTestServer, inbox: Path, db: None) -> None:
    (inbox / "clients.csv").write_bytes(csv_bytes([client_row()]))
    source = source_for(sftp_server)
    report = intake.sftp_source_poll(source=source, now=NOW)
    assert report.waiting == ["clients.csv"] and report.error == ""
    assert (inbox / "clients.csv").exists() and not IntakeFile.objects.exists()

    stopped = Campaign.objects.create(date=NOW.date(), status=Campaign.Status.STOPPED)
    assert intake.sftp_source_poll(source=source, now=NOW).waiting == ["clients.csv"]
    Campaign.objects.filter(pk=stopped.pk).update(status=Campaign.Status.RUNNING)
    assert intake.sftp_source_poll(source=source, now=NOW).loaded == ["clients.csv"]
    assert QueueItem.objects.filter(campaign=stopped).count() == 1


def test_files_being_uploaded_and_subfolders_are_left_alone(campaign: Campaign, sftp_server: SftpTestServer, inbox: Path) -> None:
    (inbox / "clients.csv.part").write_bytes(csv_bytes([client_row()]))
    (inbox / ".hidden.csv").write_bytes(csv_bytes([client_row()]))
    (inbox / "archive").mkdir()
    report = intake.sftp_source_poll(source=source_for(sftp_server), now=NOW)
    assert report.loaded == report.failed == report.waiting == []
    assert sorted(p.name for p in inbox.iterdir()) == [".hidden.csv", "archive", "clients.csv.part"]


def test_folders_are_polled_at_their_own_interval_by_one_idempotent_schedule(
    campaign: Campaign, sftp_server: SftpTestServer, inbox: Path
) -> None:
    source = source_for(sftp_server)
    SftpSource.objects.filter(pk=source.pk).update(poll_minutes=10)
    assert list(intake.sftp_sources_poll(now=NOW)) == ["Acme drop"]
    assert intake.sftp_sources_poll(now=NOW + dt.timedelta(minutes=9)) == {}
    assert list(intake.sftp_sources_poll(now=NOW + dt.timedelta(minutes=10))) == ["Acme drop"]
    SftpSource.objects.update(enabled=False)
    assert intake.sftp_sources_poll(now=NOW + dt.timedelta(minutes=30)) == {}

    schedules.schedules_install()
    schedules.schedules_install()
    poll = Schedule.objects.get(name="sftp-intake-poll")
    assert poll.func == "campaigns.tasks.sftp_sources_poll_task" and poll.minutes == 1


def test_a_file_loaded_but_not_moved_is_only_moved_at_the_next_poll(campaign: Campaign, sftp_server: SftpTestServer, inbox: Path) -> None:
    data = csv_bytes([client_row(), client_row(phone="555-0100")])
    (inbox / "clients.csv").write_bytes(data)
    # A file where the processed/ folder should be: the move fails after the load.
    (inbox / "processed").write_text("in the way")
    source = source_for(sftp_server)
    report = intake.sftp_source_poll(source=source, now=NOW)
    assert report.error and report.loaded == []
    assert (inbox / "clients.csv").read_bytes() == data
    assert QueueItem.objects.filter(campaign=campaign).count() == 1
    assert IntakeFile.objects.get().moved_at is None

    (inbox / "processed").unlink()
    report = intake.sftp_source_poll(source=source, now=NOW + dt.timedelta(minutes=5))
    assert report.loaded == ["clients.csv"] and report.error == ""
    assert QueueItem.objects.filter(campaign=campaign).count() == 1 and RejectedRow.objects.count() == 1  # not loaded twice
    assert (inbox / "processed" / "clients.csv").read_bytes() == data
    [rejected] = result_rows(inbox / "processed" / "clients.csv.result.csv")
    assert rejected["line"] == "3" and "not a valid number" in rejected["reason"]
    assert IntakeFile.objects.get().moved_at == NOW + dt.timedelta(minutes=5)


def test_a_daily_file_of_the_same_name_keeps_the_earlier_ones_in_processed(
    campaign: Campaign, sftp_server: SftpTestServer, inbox: Path
) -> None:
    source = source_for(sftp_server)
    monday, tuesday = csv_bytes([client_row()]), csv_bytes([client_row()])
    (inbox / "clients.csv").write_bytes(monday)
    intake.sftp_source_poll(source=source, now=NOW)
    (inbox / "clients.csv").write_bytes(tuesday)
    report = intake.sftp_source_poll(source=source, now=NOW + dt.timedelta(minutes=5))
    assert report.loaded == ["clients.csv"]
    assert (inbox / "processed" / "clients.csv").read_bytes() == monday
    assert (inbox / "processed" / "clients-20250610-090500.csv").read_bytes() == tuesday
    assert (inbox / "processed" / "clients-20250610-090500.csv.result.csv").exists()
    assert QueueItem.objects.filter(campaign=campaign).count() == 2
