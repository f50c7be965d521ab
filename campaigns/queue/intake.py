"""Partners' client files from SFTP intake folders, queued like an admin upload.

Every poll of a folder (claimed first, so two workers never read one folder at once) lists its
files and, for each new one:

1. reads it and takes its SHA-256: the same bytes load once, whatever the file is called and
   however often it is polled or put back (the checksum is unique in `IntakeFile`);
2. queues it through the very same path as an admin upload (`queue_upload_csv`: same columns,
   same row checks, rejected rows stored with their reasons);
3. writes a result file listing every rejected row with its reason, and moves the file beside it
   into `processed/` — or into `failed/` when it is not a usable CSV at all (then nothing of it
   was loaded, and the result file says why).

Which day a file feeds: today's campaign (portal time zone) while it still takes clients (draft,
loading, running or paused), as an admin upload does. With no such campaign — none created yet,
or the day already stopping — the file is left where it is, untouched, and loaded by the first
poll once the next campaign exists.

Nothing is lost when the server is down, refuses our credentials or presents another host key:
the poll stops before touching anything, the folder shows the problem, an alert says so, and the
file is there for the next poll. A file loaded but not yet moved (the connection dropped in
between) is recognised by its checksum on the next poll and only moved, with the same result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import posixpath
from dataclasses import dataclass, field

import paramiko
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns import spreadsheets
from campaigns.alerts import alert_raise
from campaigns.models import Campaign, IntakeFile, SftpSource
from campaigns.queue import load as queue
from integrations import clock
from integrations.http import IntegrationError
from integrations.sftp import client as sftp

log = logging.getLogger(__name__)

PROCESSED_DIR = "processed"
FAILED_DIR = "failed"
RESULT_SUFFIX = ".result.csv"
RESULT_COLUMNS = ("line", "client_id", "reason")
# Names a partner's upload in progress, or our own result files, go by: never loaded.
SKIPPED_SUFFIXES = (".part", ".tmp", ".filepart", RESULT_SUFFIX)
# A poll claim older than this belongs to a worker that died mid-poll.
POLL_CLAIM_TTL = dt.timedelta(minutes=15)
ALERT_SOURCE = "sftp-intake"


@dataclass
class PollReport:
    """What one poll of one folder did."""

    loaded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    error: str = ""


def intake_campaign(*, now: dt.datetime) -> Campaign | None:
    """The campaign an intake file feeds: today's, while it still takes clients."""
    return Campaign.objects.filter(date=timezone.localdate(now), status__in=queue.LOADABLE_STATUSES).first()


def _result_text(rows: list[tuple[int | str, str, str]]) -> str:
    return "".join(spreadsheets.csv_dict_lines(
        ({"line": line, "client_id": client_id, "reason": reason} for line, client_id, reason in rows),
        fieldnames=RESULT_COLUMNS,
    ))  # fmt: skip


def _load(*, intake: IntakeFile, data: bytes, campaign: Campaign, now: dt.datetime) -> None:
    """Queue the file's clients (the upload path) and record the result on `intake`."""
    try:
        progress = queue.queue_upload_csv(
            campaign=campaign, upload=io.BytesIO(data), filename=intake.filename, now=now,
            source=queue.SOURCE_SFTP, keep_rejections=True,
        )  # fmt: skip
    except queue.CsvFileError as exc:
        intake.status = IntakeFile.Status.FAILED
        intake.error = str(exc)
        intake.result = _result_text([("", "", f"Nothing was loaded: {exc}")])
    else:
        intake.status = IntakeFile.Status.LOADED
        intake.rows_read = progress.read
        intake.rows_inserted = progress.inserted
        intake.rows_rejected = progress.rejected
        intake.rows_no_touchpoint = progress.no_touchpoint
        intake.result = _result_text([(r.row_number, r.client_id, r.reason) for r in progress.rejections or []])
    intake.save()


def _place(*, session: paramiko.SFTPClient, source: SftpSource, name: str, failed: bool, result: str, now: dt.datetime) -> str:
    """The result file beside the file, in processed/ or failed/; the file moved last, so a poll
    that dies in between finds the file again and finishes the move. A partner sending a file
    of the same name every day keeps the earlier ones: a taken name gets the time appended."""
    target_dir = sftp.join(source.path, FAILED_DIR if failed else PROCESSED_DIR)
    sftp.ensure_directory(session, target_dir)
    target = sftp.join(target_dir, name)
    if sftp.exists(session, target):
        stem, extension = posixpath.splitext(name)
        target = sftp.join(target_dir, f"{stem}-{timezone.localtime(now):%Y%m%d-%H%M%S}{extension}")
    sftp.write_bytes(session, target + RESULT_SUFFIX, result.encode("utf-8"))
    sftp.move(session, sftp.join(source.path, name), target)
    return target


def _move(*, session: paramiko.SFTPClient, source: SftpSource, intake: IntakeFile, name: str, now: dt.datetime) -> None:
    failed = intake.status == IntakeFile.Status.FAILED
    target = _place(session=session, source=source, name=name, failed=failed, result=intake.result, now=now)
    IntakeFile.objects.filter(pk=intake.pk).update(moved_to=target, moved_at=now)


def _duplicate_result(earlier: IntakeFile) -> str:
    when = timezone.localtime(earlier.received_at).strftime("%Y-%m-%d %H:%M %Z")
    return _result_text([("", "", f"Nothing was loaded again: the same file was already received as {earlier.filename} on {when}.")])


def _claim(source: SftpSource, now: dt.datetime) -> bool:
    return bool(
        SftpSource.objects.filter(pk=source.pk)
        .filter(Q(poll_claimed_at__isnull=True) | Q(poll_claimed_at__lt=now - POLL_CLAIM_TTL))
        .update(poll_claimed_at=now)
    )


def _file(*, session: paramiko.SFTPClient, source: SftpSource, name: str, now: dt.datetime, report: PollReport) -> None:
    data = sftp.read_bytes(session, sftp.join(source.path, name), limit=queue.CSV_MAX_BYTES)
    checksum = hashlib.sha256(data).hexdigest()
    earlier = IntakeFile.objects.filter(checksum=checksum).first()
    if earlier is not None and earlier.status != IntakeFile.Status.LOADING:
        if earlier.moved_at is None and earlier.source_id == source.pk and earlier.filename == name:
            # Loaded by an earlier poll that lost the connection before moving it.
            _move(session=session, source=source, intake=earlier, name=name, now=now)
            (report.failed if earlier.status == IntakeFile.Status.FAILED else report.loaded).append(name)
            return
        _place(session=session, source=source, name=name, failed=earlier.status == IntakeFile.Status.FAILED,
               result=_duplicate_result(earlier), now=now)  # fmt: skip
        report.duplicates.append(name)
        log.info("sftp intake: file already loaded", extra={"source": source.name, "file": name, "first_seen_as": earlier.filename})
        return
    if earlier is not None:
        if earlier.received_at >= now - POLL_CLAIM_TTL:
            return  # another worker is loading these very bytes right now
        # The worker loading it died: load it again (clients it queued are not queued twice).
        IntakeFile.objects.filter(pk=earlier.pk, status=IntakeFile.Status.LOADING).delete()
    campaign = intake_campaign(now=now)
    if campaign is None:
        report.waiting.append(name)
        return
    try:
        with transaction.atomic():
            intake = IntakeFile.objects.create(
                source=source, filename=name, checksum=checksum, size=len(data), campaign=campaign, received_at=now
            )
    except IntegrityError:
        return  # claimed by another worker between our read and this insert
    try:
        _load(intake=intake, data=data, campaign=campaign, now=now)
    except Exception:
        # Not the file's fault (the database, say): forget it, so the next poll loads it again
        # (already queued clients are not queued twice).
        IntakeFile.objects.filter(pk=intake.pk).delete()
        raise
    _move(session=session, source=source, intake=intake, name=name, now=now)
    (report.failed if intake.status == IntakeFile.Status.FAILED else report.loaded).append(name)
    log.info(
        "sftp intake: file processed",
        extra={"source": source.name, "file": name, "status": intake.status, "campaign_id": campaign.pk,
               "rows_read": intake.rows_read, "rows_inserted": intake.rows_inserted, "rows_rejected": intake.rows_rejected},
    )  # fmt: skip


def sftp_source_poll(*, source: SftpSource, now: dt.datetime | None = None) -> PollReport:
    """Load the folder's new files (see the module's docstring); an unreachable or untrusted
    server raises an alert and leaves every file where it is."""
    now = now or clock.now()
    report = PollReport()
    if not _claim(source, now):
        log.info("sftp intake: poll already under way", extra={"source": source.name})
        return report
    try:
        with sftp.session(source.server()) as session:
            for remote in sftp.list_files(session, source.path):
                if remote.name.startswith(".") or remote.name.lower().endswith(SKIPPED_SUFFIXES):
                    continue
                _file(session=session, source=source, name=remote.name, now=now, report=report)
    except IntegrationError as exc:
        report.error = str(exc)
        SftpSource.objects.filter(pk=source.pk).update(last_polled_at=now, last_error=report.error, poll_claimed_at=None)
        alert_raise(campaign=None, source=ALERT_SOURCE, message=f"Intake folder “{source.name}”: {exc}")
        log.warning("sftp intake: poll failed", extra={"source": source.name, "error": report.error})
        return report
    except BaseException:
        SftpSource.objects.filter(pk=source.pk).update(poll_claimed_at=None)
        raise
    SftpSource.objects.filter(pk=source.pk).update(last_polled_at=now, last_success_at=now, last_error="", poll_claimed_at=None)
    return report


def sftp_sources_poll(*, now: dt.datetime | None = None) -> dict[str, PollReport]:
    """Every minute: poll each enabled intake folder whose interval has passed."""
    now = now or clock.now()
    reports: dict[str, PollReport] = {}
    for source in SftpSource.objects.filter(enabled=True).order_by("name"):
        if source.last_polled_at is not None and source.last_polled_at + dt.timedelta(minutes=source.poll_minutes) > now:
            continue
        reports[source.name] = sftp_source_poll(source=source, now=now)
    return reports
