"""Follow-up e-mails through Django's e-mail framework (EMAIL_* settings).

The payment link a client asked for, and the summary of a promise to pay, go by e-mail when a
text cannot be sent — the client opted out of texts, has no mobile number (none, or one that is
known to be a landline), or the text was refused for a reason of the channel — or always, when
the dialer settings make e-mail a second channel. Only to accounts with a valid e-mail address,
never to a client who unsubscribed from e-mail or who asked for no contact at all (an
all-channel suppression: cease communication, dispute hold, attorney).

Each e-mail has a text and an HTML part and a signed unsubscribe link, also in the
List-Unsubscribe header (one-click, RFC 8058); unsubscribing records an e-mail suppression.
Sending is claimed (a conditional update) before the SMTP call, once per `local_id`; a failed
send is retried by the minute sweep a few times, then marked failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass
from typing import Any

import phonenumbers
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse

from cadences.models import DialerSettings
from campaigns.compliance.ledger import suppression_add
from campaigns.models import Account, EmailMessage, PromiseToPay, Suppression
from campaigns.payments import links as payment_links

log = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "campaigns.mail.unsubscribe"
MAX_SEND_ATTEMPTS = 5
RETRY_DELAY = dt.timedelta(minutes=5)
# While one worker sends an e-mail no other takes it; one that died frees it after this.
SEND_LEASE = dt.timedelta(minutes=5)
SEND_BATCH = 100

Mode = DialerSettings.EmailFollowUps


# --- Can the client be texted, or e-mailed? ---------------------------------------------------


def text_unavailable_reason(*, client_id: str, phone: str) -> str:
    """Why a text cannot reach the client ("" when it can): an opt-out of texts (their own, or
    their number's), or no mobile number. A number is only taken for a landline when it is known
    to be one (many North American numbers can be either)."""
    if Suppression.objects.filter(
        Q(client_id=client_id) | Q(phone=phone) if phone else Q(client_id=client_id), channel=Suppression.Channel.SMS, lifted_at__isnull=True
    ).exists():
        return "the client opted out of texts"
    if not phone:
        return "the client has no mobile number"
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return "the client has no mobile number"
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE:
        return "the client's number is a landline"
    return ""


def email_blocked_reason(account: Account) -> str:
    """Why the account gets no e-mail ("" when it may): no valid address, unsubscribed, or an
    all-channel suppression."""
    try:
        validate_email(account.email)
    except ValidationError:
        return "no e-mail address"
    active = Suppression.objects.filter(client_id=account.client_id, lifted_at__isnull=True)
    if active.filter(channel=Suppression.Channel.EMAIL).exists():
        return "unsubscribed from e-mail"
    if active.filter(channel=Suppression.Channel.ALL).exists():
        return "suppressed on every channel"
    return ""


# --- The unsubscribe link ---------------------------------------------------------------------


def unsubscribe_token(*, client_id: str) -> str:
    return signing.dumps({"c": client_id}, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_url(*, client_id: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("campaigns-email-unsubscribe", args=[unsubscribe_token(client_id=client_id)])


def unsubscribe_client_id(token: str) -> str | None:
    """The client a genuine unsubscribe token names; None for a forged or damaged one. It never
    expires: an unsubscribe link must keep working."""
    try:
        value = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    client_id = value.get("c") if isinstance(value, dict) else None
    return client_id if isinstance(client_id, str) and client_id else None


def email_unsubscribe(*, client_id: str, source: str) -> Suppression:
    """The client's e-mail opt-out (once: a second click changes nothing)."""
    return suppression_add(
        reason=Suppression.Reason.EMAIL_OPT_OUT,
        channel=Suppression.Channel.EMAIL,
        source=source,
        client_id=client_id,
        note="Unsubscribed through the link in a follow-up e-mail.",
    )


# --- Writing and sending ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _render(*, kind: str, context: dict[str, object]) -> Rendered:
    name = "payment_link" if kind == EmailMessage.Kind.PAYMENT_LINK else "promise_summary"
    subject = render_to_string(f"campaigns/email/{name}_subject.txt", context).strip()
    return Rendered(
        subject=subject,
        text=render_to_string(f"campaigns/email/{name}.txt", context),
        html=render_to_string(f"campaigns/email/{name}.html", context),
    )


def _context(*, account: Account, payment_link: str) -> dict[str, object]:
    return {
        "first_name": account.first_name or "there",
        "company_name": DialerSettings.load().company_name,
        "payment_link": payment_link,
        "unsubscribe_url": unsubscribe_url(client_id=account.client_id),
    }


class FollowUpEmail(EmailMultiAlternatives):
    def message(self, *args: Any, **kwargs: Any) -> Any:
        mime = super().message(*args, **kwargs)
        # The List-Unsubscribe URL is long and unbreakable: folded at 78 characters it would be
        # sent as encoded words, which mail clients do not read as a link. RFC 5322 allows lines
        # of up to 998 characters.
        mime.policy = mime.policy.clone(max_line_length=998)
        return mime


def _message(*, message: EmailMessage, rendered: Rendered, unsubscribe: str) -> EmailMultiAlternatives:
    email = FollowUpEmail(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.to_address],
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Billing-Dialer-Reference": message.local_id,
        },
    )
    email.attach_alternative(rendered.html, "text/html")
    return email


def _queue(*, local_id: str, kind: str, account: Account, why: str, call_id: str, now: dt.datetime) -> EmailMessage | None:
    """The e-mail of `local_id`, made once; None when the account may not be e-mailed."""
    blocked = email_blocked_reason(account)
    if blocked:
        log.info("follow-up e-mail not sent", extra={"client_id": account.client_id, "kind": kind, "why": blocked})
        return None
    message, _ = EmailMessage.objects.get_or_create(
        local_id=local_id,
        defaults={
            "kind": kind, "client_id": account.client_id, "to_address": account.email, "subject": "", "why": why[:200],
            "call_id": call_id, "next_attempt_at": now,
        },
    )  # fmt: skip
    return message


def email_send(*, message_id: int, now: dt.datetime) -> bool:
    """Send one pending e-mail if no other worker holds it; True when it went out now."""
    claimed = (
        EmailMessage.objects.filter(pk=message_id, status=EmailMessage.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=now + SEND_LEASE, send_attempts=F("send_attempts") + 1)
    )
    if not claimed:
        return False
    message = EmailMessage.objects.get(pk=message_id)
    account = Account.objects.filter(client_id=message.client_id).first()
    # Checked again at the moment of sending: the client may have unsubscribed or been suppressed meanwhile.
    blocked = "the account is gone" if account is None else email_blocked_reason(account)
    if account is None or blocked:
        EmailMessage.objects.filter(pk=message.pk).update(status=EmailMessage.Status.FAILED, error=f"not sent: {blocked}")
        return False
    if message.kind == EmailMessage.Kind.PAYMENT_LINK:
        link = payment_links.secure_link(account, payment_links.BALANCE, message.call_id or None)
        context = _context(account=account, payment_link=link)
    else:
        promise = PromiseToPay.objects.filter(call_id=message.call_id).first()
        if promise is None:
            EmailMessage.objects.filter(pk=message.pk).update(status=EmailMessage.Status.FAILED, error="not sent: the promise is gone")
            return False
        link = payment_links.secure_link(account, payment_links.PROMISE, promise.call_id, promise_id=promise.pk)
        context = {**_context(account=account, payment_link=link), "amount": promise.amount, "promised_date": promise.promised_date}
    rendered = _render(kind=message.kind, context=context)
    try:
        _message(message=message, rendered=rendered, unsubscribe=str(context["unsubscribe_url"])).send()
    except (smtplib.SMTPException, OSError) as exc:
        failed = message.send_attempts >= MAX_SEND_ATTEMPTS
        EmailMessage.objects.filter(pk=message.pk).update(
            status=EmailMessage.Status.FAILED if failed else EmailMessage.Status.PENDING,
            next_attempt_at=None if failed else now + RETRY_DELAY,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            subject=rendered.subject[:200],
        )
        log.warning("follow-up e-mail failed", extra={"local_id": message.local_id, "attempts": message.send_attempts, "error": type(exc).__name__})
        return False
    EmailMessage.objects.filter(pk=message.pk).update(
        status=EmailMessage.Status.SENT, sent_at=now, next_attempt_at=None, error="", subject=rendered.subject[:200]
    )
    log.info("follow-up e-mail sent", extra={"local_id": message.local_id, "kind": message.kind, "client_id": message.client_id})
    return True


def emails_send_due(*, now: dt.datetime, limit: int = SEND_BATCH) -> int:
    """The minute sweep: e-mails whose send did not happen yet (worker down, SMTP refused)."""
    ids = list(
        EmailMessage.objects.filter(status=EmailMessage.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(email_send(message_id=pk, now=now) for pk in ids)


# --- What goes by e-mail ----------------------------------------------------------------------


def payment_link_local_id(call_id: str) -> str:
    return f"email-paylink-{call_id}"[:100]


def promise_summary_local_id(call_id: str) -> str:
    return f"email-promise-{call_id}"[:100]


def payment_link_email(*, account: Account, call_id: str, text_problem: str, now: dt.datetime) -> bool:
    """The payment link asked for on `call_id`, by e-mail: when the text could not go
    (`text_problem` says why) or e-mail is a second channel. True when it went out now."""
    mode = DialerSettings.load().email_follow_ups
    if mode == Mode.OFF or (mode == Mode.FALLBACK and not text_problem):
        return False
    why = f"The text could not be sent: {text_problem}." if text_problem else "E-mail is a second channel."
    message = _queue(local_id=payment_link_local_id(call_id), kind=EmailMessage.Kind.PAYMENT_LINK, account=account, why=why, call_id=call_id, now=now)
    return message is not None and email_send(message_id=message.pk, now=now)


def promise_summary_email(*, promise_id: int, now: dt.datetime) -> bool:
    """A promise's summary (amount, date, the link to pay it) by e-mail right after the call: as
    a second channel, or when the client cannot be texted (their reminder text would not reach
    them either). True when it went out now."""
    promise = PromiseToPay.objects.filter(pk=promise_id).first()
    if promise is None or promise.status != PromiseToPay.Status.PENDING:
        return False
    account = Account.objects.filter(client_id=promise.client_id).first()
    mode = DialerSettings.load().email_follow_ups
    if account is None or mode == Mode.OFF:
        return False
    text_problem = text_unavailable_reason(client_id=account.client_id, phone=promise.phone or account.phone)
    if mode == Mode.FALLBACK and not text_problem:
        return False
    why = f"The client cannot be texted: {text_problem}." if text_problem else "E-mail is a second channel."
    message = _queue(
        local_id=promise_summary_local_id(promise.call_id), kind=EmailMessage.Kind.PROMISE_SUMMARY, account=account, why=why,
        call_id=promise.call_id, now=now,
    )  # fmt: skip
    return message is not None and email_send(message_id=message.pk, now=now)
