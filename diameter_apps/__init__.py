"""Diameter base protocol and credit-control applications, sans-IO.

Public API of the base stack (bytes and ``now`` in, events and bytes out; no asyncio, no
sockets):

- :mod:`diameter_apps.codec`: ``Message``, ``Avp`` (builders ``Avp.u32(...)``, getters
  ``avp.as_u32()``, ``children()``), ``decode_message``; the classes themselves live in
  :mod:`diameter_apps.avp` and :mod:`diameter_apps.message`;
- :mod:`diameter_apps.peer`: ``PeerConnection``, ``PeerSettings`` (see its docstring for the
  adapter loop); the settings and the capabilities exchange live in
  :mod:`diameter_apps.capabilities`;
- :mod:`diameter_apps.events`: the events a peer yields;
- :mod:`diameter_apps.router`: ``Router`` ((application, command) → handler) and the
  destination checks (``check_destination``);
- :mod:`diameter_apps.duplicates`: ``DuplicateCache`` (share one across connections);
- :mod:`diameter_apps.answers`: ``answer_to`` and ``answer_for_error``;
- :mod:`diameter_apps.validation`: ``RequestChecker`` (one-pass decode + dictionary checks),
  ``Profile`` (LENIENT / STRICT);
- :mod:`diameter_apps.errors`: the error classes with their Result-Codes;
- :mod:`diameter_apps.dictionary`, :mod:`diameter_apps.codes`, :mod:`diameter_apps.limits`.
"""
