"""E-mail notifications to subscribers over SMTP, from templates per language.

Options:
- ``host`` / ``port`` (25) of the SMTP relay, ``starttls`` (false), ``username`` / ``password``
  (optional), ``timeout_s`` (10);
- ``from``: the sender address;
- ``to``: the recipient address as a template over the event, e.g. ``"{subscriber}@mail.mvno"``
  (an operator's e-mail-to-SMS gateway, or its directory's address scheme);
- ``language`` (``en``): which of ``templates`` this plug-in instance uses (one instance per
  tenant and language: the dispatch file's ``tenants`` picks the tenant);
- ``currency`` (``""``): printed after money amounts;
- ``templates``: ``{<language>: {<event type>: {subject: ..., body: ...}}}``; placeholders as
  ``ocs.plugins.templates`` lists (money in currency units).

An event type without a template is not for this channel: ok without a message. The event id
is the ``Message-ID``'s local part, so a redelivered message is recognisably the same one.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from balance.events import Event
from ocs.dispatch_core import Verdict
from ocs.plugins import PluginConfigError, option
from ocs.plugins.templates import check_template, fields_of


def parse_templates(value: Any, language: str) -> dict[str, tuple[str, str]]:
    if not isinstance(value, dict) or not isinstance(value.get(language), dict):
        raise PluginConfigError(f"option 'templates': needs a mapping for language {language!r}")
    out: dict[str, tuple[str, str]] = {}
    for event_type, template in value[language].items():
        where = f"templates.{language}.{event_type}"
        if not isinstance(template, dict) or set(template) != {"subject", "body"}:
            raise PluginConfigError(f"option {where!r}: a mapping with subject and body")
        out[str(event_type)] = (
            check_template(str(template["subject"]), f"{where}.subject"),
            check_template(str(template["body"]), f"{where}.body"),
        )
    return out


class EmailPlugin:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.host = option(options, "host", str)
        self.port = option(options, "port", int, 25)
        self.sender = option(options, "from", str)
        self.to = check_template(option(options, "to", str), "to")
        self.starttls = option(options, "starttls", bool, False)
        self.username = options.get("username")
        self.password = options.get("password")
        self.timeout_s = option(options, "timeout_s", float, 10.0)
        self.currency = option(options, "currency", str, "")
        self.language = option(options, "language", str, "en")
        self.templates = parse_templates(options.get("templates"), self.language)

    def message(self, event: Event) -> EmailMessage | None:
        template = self.templates.get(event.type)
        if template is None:
            return None
        values = fields_of(event, self.currency)
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = self.to.format_map(values)
        msg["Subject"] = template[0].format_map(values)
        msg["Message-ID"] = f"<{event.id.replace(':', '.')}@mvna-ocs>"
        msg["Content-Language"] = self.language
        msg.set_content(template[1].format_map(values))
        return msg

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(str(self.username), str(self.password or ""))
            smtp.send_message(msg)

    async def handle(self, event: Event) -> Verdict:
        msg = self.message(event)
        if msg is None:
            return Verdict.OK
        try:
            await asyncio.to_thread(self._send, msg)
        except smtplib.SMTPRecipientsRefused:
            return Verdict.FAIL  # the address is refused: retrying will not help
        except smtplib.SMTPResponseException as exc:
            return Verdict.RETRY if 400 <= exc.smtp_code < 500 else Verdict.FAIL
        except (smtplib.SMTPException, OSError):
            return Verdict.RETRY
        return Verdict.OK

    async def aclose(self) -> None:
        return None


def create(options: Mapping[str, Any]) -> EmailPlugin:
    return EmailPlugin(options)
