"""Message contents: alert e-mails to the officer in charge and payment reminders (pure).

Templates are plain text with ``$name`` placeholders (:class:`string.Template`); the first
line is ``Subject: ...``, then a blank line and the body. Unknown placeholders stay visible
rather than failing, so a template typo shows in the message instead of losing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from string import Template
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """An e-mail's subject and plain-text body."""

    subject: str
    body: str


def render_message(template: str, values: Mapping[str, Any]) -> Message:
    """Fill a template; numbers are shown with thousands separators and two decimals at most.

    Raises:
        ValueError: the template does not start with a ``Subject:`` line.
    """
    head, _, body = template.partition("\n")
    if not head.lower().startswith("subject:"):
        raise ValueError("a message template must start with a 'Subject: ...' line")
    text = {k: _show(v) for k, v in values.items()}
    subject = Template(head.split(":", 1)[1].strip()).safe_substitute(text)
    return Message(subject, Template(body.lstrip("\n")).safe_substitute(text))


def _show(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)


def evidence_lines(evidence: Mapping[str, Any]) -> str:
    """Evidence as indented ``name: value`` lines, in the order given."""
    return "\n".join(f"  {k}: {_show(v)}" for k, v in evidence.items())
