"""SMS templates: validation, rendering in a restricted context, and SMS length.

Billing managers write templates in Django's template language, but the engine here knows only
the handful of tags and filters a text message needs: no `load`, `include`, `url`, `debug` or
anything else that could read files, reach other code or dump the context. A template can read
the variables in `ALLOWED_VARIABLES` and nothing else.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.template import Context, Engine, Library, Node, NodeList, TemplateSyntaxError
from django.template import defaultfilters, defaulttags
from django.template.base import FilterExpression, TextNode, Variable
from django.template.smartif import TokenBase

ALLOWED_VARIABLES = (
    "client_name",
    "first_name",
    "amount_due",
    "days_past_due",
    "payment_link",
    "suspension_date",
    "cancellation_date",
    "company_name",
)

# The wording every campaign text carries, so a client always knows how to stop them.
OPT_OUT_TEXT = "Reply STOP to opt out."

# Phases whose texts must not cite an amount: the client may not even know a payment failed yet.
NO_AMOUNT_PHASES = frozenset({"payment_missed", "soft_intro"})

class Amount:
    """An amount of money as a text shows it: "$1,234.56". The `raw` filter gives "1,234.56".

    Not a Decimal: the template engine would localise a Decimal itself and drop the sign. Other
    filters (`floatformat`) read it as the bare number.
    """

    def __init__(self, value: Decimal) -> None:
        self.value = value

    def __str__(self) -> str:
        return format_money(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Amount) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def format_figure(value: Decimal) -> str:
    """'1,234.56': two places and thousands grouped, as Django's floatformat writes them."""
    return str(defaultfilters.floatformat(value, "2g"))


def format_money(value: Decimal) -> str:
    """'$1,234.56', the way every page and text shows an amount."""
    return f"${format_figure(value)}"


def raw(value: Any) -> Any:
    """`{{ amount_due|raw }}`: the figure without its currency sign."""
    return format_figure(value.value) if isinstance(value, Amount) else value


_ALLOWED_TAGS = ("if", "firstof", "comment")
_ALLOWED_FILTERS = (
    "add",
    "capfirst",
    "cut",
    "date",
    "default",
    "default_if_none",
    "floatformat",
    "lower",
    "stringformat",
    "time",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "yesno",
)

_LIBRARY = Library()
for _name in _ALLOWED_TAGS:
    _LIBRARY.tag(_name, defaulttags.register.tags[_name])
for _name in _ALLOWED_FILTERS:
    _LIBRARY.filters[_name] = defaultfilters.register.filters[_name]
_LIBRARY.filter("raw", raw)


class _RestrictedEngine(Engine):
    """An engine whose only builtins are `_LIBRARY` (Django always adds its own otherwise)."""

    default_builtins: list[str] = []

    def get_template_builtins(self, builtins: list[str]) -> list[Library]:
        return [_LIBRARY]


_ENGINE = _RestrictedEngine(debug=False, autoescape=False, libraries={}, builtins=[], loaders=[])

_AMOUNT_LITERAL = re.compile(r"\$\s?\d")
_SIGN_BEFORE_AMOUNT = re.compile(r"\$\s*\{\{\s*amount_due\s*\}\}")
# An opt-out instruction names a keyword the carrier and HeyMarket act on and says what it does:
# "Reply STOP to opt out", "Text STOP to unsubscribe", "STOP to end", "Reply STOP to cancel".
# A text that merely mentions the word ("Don't reply STOP, we never stop.") tells no one how to stop.
_OPT_OUT_KEYWORD = r"(?:STOP(?:ALL)?|UNSUBSCRIBE|CANCEL|END|QUIT|OPT[\s-]?OUT)"
_OPT_OUT_EFFECT = r"(?:opt[\s-]?out|unsubscribe|stop|end|cancel|quit|be\s+removed|no\s+longer\s+receive)"
_OPT_OUT_INSTRUCTION = re.compile(
    rf"(?:\b(?P<verb>reply|text|txt|send|respond)(?:\s+with)?\s+)?[\"'\u201c]?\b(?P<keyword>{_OPT_OUT_KEYWORD})\b[\"'\u201d]?"
    rf",?\s+(?:to|and\s+you\s*(?:'ll|\s+will))\s+{_OPT_OUT_EFFECT}\b",
    re.IGNORECASE,
)
# The same instruction the other way round: "To opt out, reply STOP."
_OPT_OUT_INSTRUCTION_EFFECT_FIRST = re.compile(
    rf"\bto\s+{_OPT_OUT_EFFECT}\b[\w\s]{{0,30}}?,?\s+(?P<verb>reply|text|txt|send|respond)(?:\s+with)?\s+"
    rf"[\"'\u201c]?\b(?P<keyword>{_OPT_OUT_KEYWORD})\b",
    re.IGNORECASE,
)
_NEGATION_BEFORE = re.compile(r"\b(?:don'?t|do\s+not|never|not|no\s+need\s+to)\s*$", re.IGNORECASE)
_CARD_DETAILS = re.compile(
    r"\b(card\s*(number|no\b|#|details|info)|credit\s*card|debit\s*card|cvv2?|cvc|security\s+code|"
    r"expiration\s+date|expiry\s+date|bank\s+account\s+number|routing\s+number)",
    re.IGNORECASE,
)


def _expressions(obj: Any) -> Iterator[FilterExpression]:
    """Every FilterExpression inside a node attribute (plain values, lists, `if` conditions)."""
    if isinstance(obj, FilterExpression):
        yield obj
    elif isinstance(obj, NodeList):
        return  # child nodes are visited on their own
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _expressions(item)
    elif isinstance(obj, TokenBase):
        for attr in ("first", "second", "value"):
            if hasattr(obj, attr):
                yield from _expressions(getattr(obj, attr))


def _variables(nodelist: NodeList) -> Iterator[Variable]:
    for node in nodelist.get_nodes_by_type(Node):
        for value in vars(node).values():
            for expression in _expressions(value):
                if isinstance(expression.var, Variable) and expression.var.lookups is not None:
                    yield expression.var
                for _func, args in expression.filters:
                    for is_lookup, arg in args:
                        if is_lookup and isinstance(arg, Variable) and arg.lookups is not None:
                            yield arg


def _lookups(variable: Variable) -> tuple[str, ...]:
    # `_variables` yields only variables that look something up (lookups is not None).
    return variable.lookups or ("",)


def has_opt_out_instruction(text: str) -> bool:
    """Does the text tell the client how to opt out: a keyword, and what sending it does?

    Without a verb ("STOP to end") the keyword must stand out in capitals, since ordinary prose
    uses the same words ("we stop to end the call"). A negated instruction ("don't reply STOP
    to opt out") does not count.
    """
    matches = [*_OPT_OUT_INSTRUCTION.finditer(text), *_OPT_OUT_INSTRUCTION_EFFECT_FIRST.finditer(text)]
    for match in matches:
        if match.group("verb") is None and not match.group("keyword").isupper():
            continue
        if _NEGATION_BEFORE.search(text[max(0, match.start() - 20) : match.start()]):
            continue
        return True
    return False


def tidy_text(text: str) -> str:
    """One line of text with the gaps an empty variable leaves closed.

    "...set up a plan. {{ company_name }}. Reply STOP" with no company name would otherwise read
    "plan. . Reply STOP"; a dash left before a full stop ("link - .") goes the same way.
    """
    text = " ".join(text.split())
    text = re.sub(r"\s+-\s*(?=[.!?](?:\s|$))", "", text)
    text = re.sub(r"(?<!\.)([.!?])(?:\s*\.(?!\.))+", r"\1", text)
    return re.sub(r"\s+([,.!?])(?=\s|$)", r"\1", text)


def append_sentence(text: str, sentence: str) -> str:
    """`text` followed by `sentence`, with one full stop between them, never two."""
    text = tidy_text(text)
    if not text:
        return sentence
    if text[-1] not in ".!?":
        # A link at the end takes no full stop: some phones would read it as part of the address.
        text = text if re.search(r"https?://\S+$", text) else f"{text}."
    return f"{text} {sentence}"


def template_variables(body: str) -> set[str]:
    """The variable names a template reads; raises TemplateSyntaxError when it does not parse."""
    template = _ENGINE.from_string(body)
    return {_lookups(variable)[0] for variable in _variables(template.nodelist)}


def validate_template(body: str, *, phase: str) -> list[str]:
    """Every problem with an SMS template body for `phase`, as messages a billing manager can act on."""
    if not body.strip():
        return ["The text is empty."]
    try:
        template = _ENGINE.from_string(body)
    except TemplateSyntaxError as exc:
        return [f"Template syntax error: {exc}"]

    problems: list[str] = []
    for text_node in template.nodelist.get_nodes_by_type(TextNode):
        text = str(getattr(text_node, "s", ""))
        for marker in ("{{", "}}", "{%", "%}", "{#", "#}"):
            if marker in text:
                problems.append(
                    f"Unbalanced '{marker}' near '{text.strip()[:30]}': every {{{{ needs }}}}, every {{% needs %}} "
                    "and every {# needs #}."
                )
    used: set[str] = set()
    for variable in _variables(template.nodelist):
        lookups = _lookups(variable)
        root = lookups[0]
        used.add(root)
        if root not in ALLOWED_VARIABLES:
            problems.append(
                f"Unknown variable '{root}'. Available: " + ", ".join(f"{{{{ {name} }}}}" for name in ALLOWED_VARIABLES) + "."
            )
        elif len(lookups) > 1:
            problems.append(f"'{variable.var}' reads an attribute; use '{{{{ {root} }}}}' with a filter instead.")
    if phase in NO_AMOUNT_PHASES and ("amount_due" in used or _AMOUNT_LITERAL.search(body)):
        problems.append(
            "A soft-intro or payment-missed text must not cite the amount ({{ amount_due }} or a $ figure); "
            "amounts start in the past-due phase."
        )
    if _SIGN_BEFORE_AMOUNT.search(body):
        problems.append(
            "{{ amount_due }} already carries its $ sign (it reads \"$249.00\"); remove the $ before it, "
            "or write {{ amount_due|raw }} for the bare figure."
        )
    card = _CARD_DETAILS.search(body)
    if card:
        problems.append(
            f"Never ask for card or bank details by text ('{card.group(0)}'); invite payment through {{{{ payment_link }}}}."
        )
    # Only text outside every tag and comment is sent whatever the client's data: wording inside
    # an {% if %} or a {# comment #} would leave some texts without it.
    always_sent = "".join(node.s for node in template.nodelist if isinstance(node, TextNode))
    if not has_opt_out_instruction(body):
        problems.append(f"Add opt-out wording, e.g. '{OPT_OUT_TEXT}'")
    elif not has_opt_out_instruction(always_sent):
        problems.append(
            f"Put the opt-out wording ('{OPT_OUT_TEXT}') outside any {{% if %}}, {{% firstof %}} or comment, "
            "so every text carries it."
        )
    # One message per problem, in the order found.
    return list(dict.fromkeys(problems))


def render_template(body: str, context: dict[str, Any]) -> str:
    """Render with only the allowed variables; a missing one renders as an empty string."""
    values = {name: context.get(name, "") for name in ALLOWED_VARIABLES}
    if isinstance(values["amount_due"], Decimal):  # a bare figure: it still reads with its sign
        values["amount_due"] = Amount(values["amount_due"])
    return tidy_text(_ENGINE.from_string(body).render(Context(values, autoescape=False)))


# A made-up code as long as the real ones (campaigns.payments.links.CODE_LENGTH), so a preview
# counts the characters and SMS parts the real text will have.
SAMPLE_LINK_CODE = "Xk4m9Q2aB7c2D4fG"


def sample_context(*, company_name: str, today: dt.date, suspension_in_days: int = 37, cancellation_in_days: int = 157) -> dict[str, Any]:
    """Made-up client data for previews in the admin (a client 23 days past due)."""
    return {
        "client_name": "Jordan Avery",
        "first_name": "Jordan",
        "amount_due": Amount(Decimal("249.00")),
        "days_past_due": 23,
        "payment_link": settings.PAYMENT_LINK_TEMPLATE.replace("{token}", SAMPLE_LINK_CODE),
        "suspension_date": today + dt.timedelta(days=suspension_in_days),
        "cancellation_date": today + dt.timedelta(days=cancellation_in_days),
        "company_name": company_name,
    }


# --- Voicemail prompts -------------------------------------------------------------------
# A voicemail may be heard by someone other than the client, so it is a limited-content message:
# who is calling, a request to call back and a number — nothing that reveals a debt.
_VOICEMAIL_FORBIDDEN = re.compile(
    r"\b(debts?|owe[ds]?|owing|overdue|past[\s-]+due|balance|amount|payments?|pay|paid|collections?|collector|"
    r"delinquent|late|bill|billing|suspend\w*|suspension|cancel\w*|account|invoice|arrears|missed)\b|\$|\{\{\s*amount_due",
    re.IGNORECASE,
)


def validate_voicemail_prompt(text: str) -> list[str]:
    """Problems with a voicemail prompt: it must not name a debt, an amount or the reason for the call."""
    found = sorted({match.group(0).lower() for match in _VOICEMAIL_FORBIDDEN.finditer(text)})
    if not found:
        return []
    return [
        "A voicemail must be limited-content (who is calling, a call-back request and a number); "
        "remove: " + ", ".join(f"'{word}'" for word in found) + "."
    ]


# --- SMS length --------------------------------------------------------------------------
# GSM 03.38 basic character set and the extension table (each extension character costs two
# septets: an escape plus the character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def _parts(units: list[int], single: int, part: int) -> int:
    """Message parts for characters costing `units` each; a character is never split across parts."""
    total = sum(units)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for cost in units:
        if used + cost > part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def sms_length_info(text: str) -> dict[str, Any]:
    """Encoding ("GSM-7" or "UCS-2"), length in that encoding's units, and the number of SMS parts."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        units = [2 if ch in GSM7_EXTENDED else 1 for ch in text]
        return {"encoding": "GSM-7", "characters": sum(units), "segments": _parts(units, GSM7_SINGLE, GSM7_PART)}
    # UCS-2 as carriers send it is UTF-16: characters outside the BMP (emoji) take two units.
    units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return {"encoding": "UCS-2", "characters": sum(units), "segments": _parts(units, UCS2_SINGLE, UCS2_PART)}


def sms_length_summary(info: dict[str, Any]) -> str:
    """One line for the admin: '142 characters, 1 SMS part (GSM-7)'."""
    parts = info["segments"]
    return f"{info['characters']} characters, {parts} SMS part{'' if parts == 1 else 's'} ({info['encoding']})"

