"""High-value accounts: a person first.

A client who owes the segment's high-value amount or more is offered a senior person on every
call, outbound or inbound: Grace gets `high_value` = "true", the senior ring group's number as
`transfer_number`, and an instruction (on its own, and opening the live-call prompt where there is
one) to transfer at once and never close the call herself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cadences.models import Segment

HIGH_VALUE_LINE = (
    "This client's account is high-value: a person must handle it. As soon as the client is on the line "
    "(after the identity check, or at once if they ask for a person), offer a warm transfer to a senior "
    "specialist at {transfer_number}; call the transfer_brief function first, then transfer. Never close "
    "the call yourself: if the client does not want to be transferred, tell them a senior specialist will "
    "call them back today."
)


@dataclass(frozen=True)
class HighValueRule:
    """Whether the high-value rule holds for a client, and where Grace transfers them then."""

    applies: bool
    transfer_number: str


def high_value_rule(*, segment: Segment | None, amount_due: Decimal | None, transfer_number: str) -> HighValueRule:
    """Above the segment's high-value amount, a person first: the senior ring group's number
    (the usual transfer number when the segment has none)."""
    if segment is None or not segment.is_high_value(amount_due):
        return HighValueRule(applies=False, transfer_number=transfer_number)
    return HighValueRule(applies=True, transfer_number=segment.senior_transfer_number or transfer_number)


def high_value_variables(*, rule: HighValueRule, variables: dict[str, str]) -> dict[str, str]:
    """The call's dynamic variables with the rule applied: `high_value`, the transfer number,
    and the instruction, both on its own and as a line of the live-call prompt."""
    if not rule.applies:
        return {**variables, "high_value": "false", "high_value_instruction": ""}
    line = HIGH_VALUE_LINE.format(transfer_number=rule.transfer_number)
    out = {**variables, "high_value": "true", "transfer_number": rule.transfer_number, "high_value_instruction": line}
    if "live_call_prompt" in variables:  # outbound calls carry the step's prompt; inbound agents have their own
        prompt = variables["live_call_prompt"]
        out["live_call_prompt"] = f"{line}\n\n{prompt}" if prompt else line
    return out


