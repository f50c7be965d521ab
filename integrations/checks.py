"""Is each vendor set up and answering? One check per vendor, for `manage.py check_integrations`.

Each check says whether the vendor is live or simulated, whether it answered, and — when
something is wrong — what a person can do about it: which variable is missing, or what the
vendor said.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from integrations import modes
from integrations.dialflow import client as dialflow
from integrations.heymarket import client as heymarket
from integrations.http import IntegrationError
from integrations.retell import client as retell
from integrations.warehouse import client as warehouse

_E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)
# A number no client has: reading its status changes nothing at HeyMarket.
PROBE_PHONE = "+12125550100"


@dataclass
class VendorCheck:
    vendor: str
    mode: str  # "live" | "sandbox" | "off" (neither: no credentials and the sandbox is off)
    target: str  # where it was reached (URL, warehouse description)
    reachable: bool = False
    detail: str = ""  # what it answered, when all is well
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reachable and not self.problems


def _mode(vendor: str) -> str:
    if modes.is_live(vendor):
        return "live"
    return "sandbox" if modes.sandbox_enabled() or vendor == "warehouse" else "off"


def _target(base_url: Callable[[], str]) -> str:
    try:
        return base_url()
    except IntegrationError:
        return "(not configured)"


def _explain(exc: IntegrationError, *, vendor: str, key_setting: str) -> str:
    if not modes.is_live(vendor) and not modes.sandbox_enabled():
        return exc.message
    if exc.status in (401, 403):
        return f"{vendor} refused the credentials (HTTP {exc.status}): check {key_setting}"
    if exc.status is None and not modes.is_live(vendor):
        return (
            f"the {vendor} simulator did not answer at {settings.SANDBOX_APP_URL}: start the web server "
            "(make run) or point SANDBOX_APP_URL at it"
        )
    if exc.status is None:
        return f"{vendor} did not answer ({exc.message}): check the base URL and the network"
    return f"{vendor} answered HTTP {exc.status}: {exc.message}"


def check_retell() -> VendorCheck:
    check = VendorCheck("retell", _mode("retell"), _target(retell.base_url))
    if modes.is_live("retell"):
        if not settings.RETELL_AGENT_ID or settings.RETELL_AGENT_ID == "agent_grace_sandbox":
            check.problems.append("RETELL_AGENT_ID is not set to the live agent's id")
        numbers = [n for n in settings.RETELL_FROM_NUMBERS if n]
        if not numbers:
            check.problems.append("RETELL_FROM_NUMBERS is empty: list the caller ids (E.164, comma-separated)")
        bad = [n for n in numbers if not _E164.fullmatch(n)]
        if bad:
            check.problems.append(f"RETELL_FROM_NUMBERS has numbers that are not E.164: {', '.join(bad)}")
    try:
        concurrency = retell.get_concurrency()
    except IntegrationError as exc:
        check.problems.append(_explain(exc, vendor="retell", key_setting="RETELL_API_KEY"))
        return check
    check.reachable = True
    check.detail = f"{concurrency.get('current_concurrency')} of {concurrency.get('concurrency_limit')} concurrent calls in use"
    return check


def check_heymarket() -> VendorCheck:
    check = VendorCheck("heymarket", _mode("heymarket"), _target(heymarket.base_url))
    if modes.is_live("heymarket"):
        if not settings.HEYMARKET_CREATOR_ID:
            check.problems.append("HEYMARKET_CREATOR_ID is not set: the member id texts are sent as")
        if not settings.HEYMARKET_WEBHOOK_TOKEN or settings.HEYMARKET_WEBHOOK_TOKEN == heymarket.SANDBOX_WEBHOOK_TOKEN:
            check.problems.append("HEYMARKET_WEBHOOK_TOKEN is not set to the token of HeyMarket's webhook configuration")
    try:
        status = heymarket.get_contact_status(PROBE_PHONE)
    except IntegrationError as exc:
        if exc.status is not None and exc.status not in (401, 403):
            # Any other answer about a contact still proves the API and the token work.
            check.reachable = True
            check.detail = f"answered HTTP {exc.status} for a contact lookup"
            return check
        check.problems.append(_explain(exc, vendor="heymarket", key_setting="HEYMARKET_API_TOKEN"))
        return check
    check.reachable = True
    check.detail = "contact status lookup works" + ("" if status.get("exists") else " (probe number unknown, as expected)")
    return check


def check_dialflow(*, ring_group: str = "billing") -> VendorCheck:
    check = VendorCheck("dialflow", _mode("dialflow"), _target(dialflow.base_url))
    if bool(settings.DIALFLOW_URL) != bool(settings.DIALFLOW_API_KEY):
        missing = "DIALFLOW_API_KEY" if settings.DIALFLOW_URL else "DIALFLOW_URL"
        check.problems.append(f"{missing} is not set, so Dialflow runs simulated: set both DIALFLOW_URL and DIALFLOW_API_KEY")
    try:
        payload = dialflow.fetch_availability(ring_group)
    except IntegrationError as exc:
        check.problems.append(_explain(exc, vendor="dialflow", key_setting="DIALFLOW_API_KEY"))
        return check
    check.reachable = True
    agents = payload.get("available_agents")
    if not isinstance(agents, int) or isinstance(agents, bool):
        check.problems.append(f"answered without an integer available_agents for ring group {ring_group!r}: {str(payload)[:200]}")
    else:
        check.detail = f"{agents} agents free in ring group {ring_group!r}"
    return check


def check_warehouse(*, history_table: str = warehouse.DEFAULT_HISTORY_TABLE) -> VendorCheck:
    names = {
        "DATABRICKS_SERVER_HOSTNAME": settings.DATABRICKS_SERVER_HOSTNAME,
        "DATABRICKS_HTTP_PATH": settings.DATABRICKS_HTTP_PATH,
        "DATABRICKS_TOKEN": settings.DATABRICKS_TOKEN,
    }
    try:
        target = warehouse.describe()
    except IntegrationError as exc:
        return VendorCheck("warehouse", _mode("warehouse"), settings.WAREHOUSE_URL.split("@")[-1], problems=[exc.message])
    check = VendorCheck("warehouse", _mode("warehouse"), target)
    given = [name for name, value in names.items() if value]
    if given and len(given) < len(names):
        missing = [name for name in names if name not in given]
        check.problems.append(f"{', '.join(missing)} not set, so the Databricks warehouse is not used: set all three")
    try:
        warehouse.ping()
    except IntegrationError as exc:
        check.problems.append(exc.message)
        return check
    check.reachable = True
    found = []
    # The local sample is read from billing_queue; a live warehouse is read by the configured query.
    tables = [history_table] if modes.is_live("warehouse") else ["billing_queue", history_table]
    for table in tables:
        try:
            found.append(f"{table} {'present' if warehouse.table_exists(table) else 'missing'}")
        except IntegrationError as exc:
            check.problems.append(exc.message)
    check.detail = "; ".join(found)
    if not modes.is_live("warehouse") and "billing_queue missing" in check.detail:
        check.problems.append("the sample queue table is missing: run python manage.py seed_warehouse --clients 2000")
    return check


def integration_checks(*, ring_group: str = "billing", history_table: str = warehouse.DEFAULT_HISTORY_TABLE) -> list[VendorCheck]:
    return [check_retell(), check_heymarket(), check_dialflow(ring_group=ring_group), check_warehouse(history_table=history_table)]
