"""HLR/HSS provisioning example: SOAP 1.1 over HTTP to the host MNO's provisioning gateway.

Each subscriber change becomes one SOAP request (operation per event type, configurable):
``created`` → ``CreateSubscriber``, ``blocked`` → ``BarSubscriber``, ``unblocked`` →
``UnbarSubscriber``, ``sim_swapped`` → ``SwapSubscriberSim``, ``deleted`` →
``DeleteSubscriber``. Other event types are not the HLR's business: answered ok without a call.

Options: ``url`` (required), ``host_mno`` (required: named in each request, so one gateway may
serve several host MNOs), ``namespace`` (``urn:mvna-ocs:provisioning:1``), ``operations``
(event type → operation name, replaces the default map), ``timeout_s`` (5), ``username`` /
``password`` (HTTP basic auth, optional).

Answers: 200 without a SOAP Fault → ok; a Fault whose faultcode ends in ``Server`` (the
gateway's transient trouble) → retry, any other Fault → fail; 5xx / no answer → retry;
other statuses → fail. The event id travels as ``<RequestId>``, the gateway's idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import httpx

from balance.events import Event
from ocs.dispatch_core import Verdict
from ocs.plugins import PluginConfigError, option

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
DEFAULT_NAMESPACE = "urn:mvna-ocs:provisioning:1"
DEFAULT_OPERATIONS = {
    "created": "CreateSubscriber",
    "blocked": "BarSubscriber",
    "unblocked": "UnbarSubscriber",
    "sim_swapped": "SwapSubscriberSim",
    "deleted": "DeleteSubscriber",
}
RESPONSE_BYTES_MAX = 1 << 20


def soap_request(event: Event, operation: str, host_mno: str, namespace: str) -> bytes:
    fields = {
        "RequestId": event.id,
        "HostMno": host_mno,
        "Tenant": event.tenant,
        "Msisdn": event.subscriber,
        "EventType": event.type,
        "Reason": str(event.payload.get("reason", "")),
        "Imsi": str(event.payload.get("imsi", "")),  # sim_swapped: the new SIM's IMSI
    }
    quoted_ns = escape(namespace, {'"': "&quot;"})
    inner = "".join(f"<p:{k}>{escape(v)}</p:{k}>" for k, v in fields.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:p="{quoted_ns}">'
        f"<soap:Body><p:{operation}>{inner}</p:{operation}></soap:Body></soap:Envelope>"
    ).encode()


def verdict_of(status: int, body: bytes) -> Verdict:
    if status >= 500 and b"Fault" not in body:
        return Verdict.RETRY
    try:
        root = ElementTree.fromstring(body) if body.strip() else None
    except ElementTree.ParseError:
        return Verdict.RETRY if status >= 500 else Verdict.FAIL
    fault = root.find(f".//{{{SOAP_ENV}}}Fault") if root is not None else None
    if fault is not None:
        code = (fault.findtext("faultcode") or "").strip()
        return Verdict.RETRY if code.endswith("Server") else Verdict.FAIL
    return Verdict.OK if status == 200 else Verdict.FAIL


class HlrPlugin:
    def __init__(
        self,
        url: str,
        host_mno: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        operations: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        auth: tuple[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise PluginConfigError("option 'url': must be an http:// or https:// URL")
        self.url, self.host_mno, self.namespace = url, host_mno, namespace
        self.operations = dict(DEFAULT_OPERATIONS if operations is None else operations)
        for name in self.operations.values():
            if not name.isidentifier():
                raise PluginConfigError(f"option 'operations': {name!r} is not an XML name")
        self.client = httpx.AsyncClient(timeout=timeout_s, auth=auth)

    async def handle(self, event: Event) -> Verdict:
        operation = self.operations.get(event.type)
        if operation is None:
            return Verdict.OK
        body = soap_request(event, operation, self.host_mno, self.namespace)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": operation}
        try:
            response = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError:
            return Verdict.RETRY
        return verdict_of(response.status_code, response.content[:RESPONSE_BYTES_MAX])

    async def aclose(self) -> None:
        await self.client.aclose()


def create(options: Mapping[str, Any]) -> HlrPlugin:
    operations = options.get("operations")
    if operations is not None and (
        not isinstance(operations, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in operations.items())
    ):
        raise PluginConfigError("option 'operations': a mapping of event type to operation")
    username = options.get("username")
    auth = (str(username), option(options, "password", str)) if username else None
    return HlrPlugin(
        option(options, "url", str),
        option(options, "host_mno", str),
        namespace=option(options, "namespace", str, DEFAULT_NAMESPACE),
        operations=operations,
        timeout_s=option(options, "timeout_s", float, 5.0),
        auth=auth,
    )
