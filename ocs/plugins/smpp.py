"""SMS notifications to subscribers over SMPP 3.4 (``smpplib``), from templates per language.

Options:
- ``host`` / ``port`` (2775) of the SMSC, ``system_id`` / ``password`` / ``system_type`` of the
  bind (as transmitter), ``timeout_s`` (10);
- ``source_addr`` (the sender: a short code, a number or an alphanumeric name) and its
  ``source_addr_ton`` (5 alphanumeric; 1 international, 3 network specific) and
  ``source_addr_npi`` (0);
- ``to`` (``"{subscriber}"``): the destination number as a template over the event, sent with
  TON 1 / NPI 1 (international, E.164);
- ``language`` (``en``), ``currency``, ``templates``: ``{<language>: {<event type>: text}}`` with
  the placeholders of ``ocs.plugins.templates``; one instance per tenant and language.

An event type without a template is not for this channel: ok without a message. Long texts go
as concatenated parts (GSM 03.38, else UCS-2). One bound connection is kept and re-made after
an error. Answers: submit_sm_resp 0 → ok; throttled (0x58), queue full (0x14), system error
(0x08), no connection or no answer → retry; any other status → fail. SMPP has no idempotency
key: a redelivery after a crash between the SMSC's answer and the acknowledgement sends the
SMS again (at least once, as every channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from balance.events import Event
from ocs.dispatch_core import Verdict
from ocs.plugins import PluginConfigError, option
from ocs.plugins.templates import check_template, fields_of

TRANSIENT_STATUSES = frozenset({0x08, 0x14, 0x58})  # system error, queue full, throttled
TEXT_CHARS_MAX = 1_000  # a notification, not a document (at most 7 UCS-2 parts)
TON_INTERNATIONAL, NPI_ISDN = 1, 1


def parse_texts(value: Any, language: str) -> dict[str, str]:
    if not isinstance(value, dict) or not isinstance(value.get(language), dict):
        raise PluginConfigError(f"option 'templates': needs a mapping for language {language!r}")
    out: dict[str, str] = {}
    for event_type, text in value[language].items():
        where = f"templates.{language}.{event_type}"
        if not isinstance(text, str) or not text.strip():
            raise PluginConfigError(f"option {where!r}: a non-empty text")
        out[str(event_type)] = check_template(text, where)
    return out


class SmppPlugin:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.host = option(options, "host", str)
        self.port = option(options, "port", int, 2775)
        self.system_id = option(options, "system_id", str)
        self.password = option(options, "password", str, "")
        self.system_type = option(options, "system_type", str, "")
        self.timeout_s = option(options, "timeout_s", float, 10.0)
        self.source_addr = option(options, "source_addr", str)
        self.source_ton = option(options, "source_addr_ton", int, 5)
        self.source_npi = option(options, "source_addr_npi", int, 0)
        self.to = check_template(option(options, "to", str, "{subscriber}"), "to")
        self.currency = option(options, "currency", str, "")
        self.language = option(options, "language", str, "en")
        self.texts = parse_texts(options.get("templates"), self.language)
        self._client: Any = None
        # The dispatcher offers several events at once; one connection sends one at a time.
        self._lock = threading.Lock()

    def text(self, event: Event) -> tuple[str, str] | None:
        """(destination, text) of the event's SMS, or None: no template for its type."""
        template = self.texts.get(event.type)
        if template is None:
            return None
        values = fields_of(event, self.currency)
        return self.to.format_map(values), template.format_map(values)[:TEXT_CHARS_MAX]

    def _connected(self) -> Any:
        if self._client is None:
            client = smpplib.client.Client(
                self.host, self.port, timeout=self.timeout_s, allow_unknown_opt_params=True
            )
            client.set_message_sent_handler(lambda pdu: None)  # checked by read_once
            try:
                client.connect()
                client.bind_transmitter(
                    system_id=self.system_id,
                    password=self.password,
                    system_type=self.system_type,
                )
            except Exception:
                client.disconnect()
                raise
            self._client = client
        return self._client

    def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing more to do
                self._client.disconnect()
            self._client = None

    def _send(self, destination: str, text: str) -> None:
        parts, coding, esm_class = smpplib.gsm.make_parts(text)
        with self._lock:
            client = self._connected()
            try:
                for part in parts:
                    client.send_message(
                        source_addr_ton=self.source_ton,
                        source_addr_npi=self.source_npi,
                        source_addr=self.source_addr,
                        dest_addr_ton=TON_INTERNATIONAL,
                        dest_addr_npi=NPI_ISDN,
                        destination_addr=destination,
                        short_message=part,
                        data_coding=coding,
                        esm_class=esm_class,
                        registered_delivery=False,
                    )
                    client.read_once()  # its submit_sm_resp: an error status raises
            except smpplib.exceptions.ConnectionError:
                self._drop()
                raise

    async def handle(self, event: Event) -> Verdict:
        message = self.text(event)
        if message is None:
            return Verdict.OK
        try:
            await asyncio.to_thread(self._send, *message)
        except smpplib.exceptions.PDUError as exc:
            status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else -1
            return Verdict.RETRY if status in TRANSIENT_STATUSES or status < 0 else Verdict.FAIL
        except (smpplib.exceptions.ConnectionError, OSError):
            return Verdict.RETRY
        return Verdict.OK

    async def aclose(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):  # the SMSC went first: closed below
                    self._client.unbind()
            self._drop()


def create(options: Mapping[str, Any]) -> SmppPlugin:
    return SmppPlugin(options)
