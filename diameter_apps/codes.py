"""Wire constants as IntEnums: command codes, application ids, Result-Codes, flags, AVP codes.

Only the values the base stack and the credit-control layer use by name live here; the full
AVP catalogue (names, types, M-bit rules) is in :mod:`diameter_apps.dictionary`.
"""

from __future__ import annotations

from enum import IntEnum

VENDOR_3GPP = 10415
"""IANA enterprise number of 3GPP: the Vendor-Id of every TS 32.299 AVP."""

# Message header flags (RFC 6733 §3): the high bits of the flags octet.
FLAG_REQUEST = 0x80
FLAG_PROXIABLE = 0x40
FLAG_ERROR = 0x20
FLAG_RETRANSMIT = 0x10

# AVP header flags (RFC 6733 §4.1).
AVP_FLAG_VENDOR = 0x80
AVP_FLAG_MANDATORY = 0x40
AVP_FLAG_PROTECTED = 0x20


class CommandCode(IntEnum):
    CAPABILITIES_EXCHANGE = 257
    RE_AUTH = 258
    ACCOUNTING = 271
    CREDIT_CONTROL = 272
    ABORT_SESSION = 274
    SESSION_TERMINATION = 275
    DEVICE_WATCHDOG = 280
    DISCONNECT_PEER = 282


class ApplicationId(IntEnum):
    DIAMETER_COMMON_MESSAGES = 0
    NASREQ = 1
    BASE_ACCOUNTING = 3
    CREDIT_CONTROL = 4
    RELAY = 0xFFFFFFFF


class ResultCode(IntEnum):
    """Result-Code values (RFC 6733 §7.1, RFC 4006 §9 / RFC 8506)."""

    # 1xxx informational
    MULTI_ROUND_AUTH = 1001
    # 2xxx success
    SUCCESS = 2001
    LIMITED_SUCCESS = 2002
    # 3xxx protocol errors: answered with the E bit set
    COMMAND_UNSUPPORTED = 3001
    UNABLE_TO_DELIVER = 3002
    REALM_NOT_SERVED = 3003
    TOO_BUSY = 3004
    LOOP_DETECTED = 3005
    REDIRECT_INDICATION = 3006
    APPLICATION_UNSUPPORTED = 3007
    INVALID_HDR_BITS = 3008
    INVALID_AVP_BITS = 3009
    UNKNOWN_PEER = 3010
    # 4xxx transient failures
    AUTHENTICATION_REJECTED = 4001
    OUT_OF_SPACE = 4002
    ELECTION_LOST = 4003
    END_USER_SERVICE_DENIED = 4010
    CREDIT_CONTROL_NOT_APPLICABLE = 4011
    CREDIT_LIMIT_REACHED = 4012
    # 5xxx permanent failures
    AVP_UNSUPPORTED = 5001
    UNKNOWN_SESSION_ID = 5002
    AUTHORIZATION_REJECTED = 5003
    INVALID_AVP_VALUE = 5004
    MISSING_AVP = 5005
    RESOURCES_EXCEEDED = 5006
    CONTRADICTING_AVPS = 5007
    AVP_NOT_ALLOWED = 5008
    AVP_OCCURS_TOO_MANY_TIMES = 5009
    NO_COMMON_APPLICATION = 5010
    UNSUPPORTED_VERSION = 5011
    UNABLE_TO_COMPLY = 5012
    INVALID_BIT_IN_HEADER = 5013
    INVALID_AVP_LENGTH = 5014
    INVALID_MESSAGE_LENGTH = 5015
    INVALID_AVP_BIT_COMBO = 5016
    NO_COMMON_SECURITY = 5017
    USER_UNKNOWN = 5030
    RATING_FAILED = 5031


class DisconnectCause(IntEnum):
    REBOOTING = 0
    BUSY = 1
    DO_NOT_WANT_TO_TALK_TO_YOU = 2


class AvpCode(IntEnum):
    """AVP codes the base stack reads or writes by name (base protocol, vendor 0)."""

    HOST_IP_ADDRESS = 257
    AUTH_APPLICATION_ID = 258
    ACCT_APPLICATION_ID = 259
    VENDOR_SPECIFIC_APPLICATION_ID = 260
    SESSION_ID = 263
    ORIGIN_HOST = 264
    SUPPORTED_VENDOR_ID = 265
    VENDOR_ID = 266
    FIRMWARE_REVISION = 267
    RESULT_CODE = 268
    PRODUCT_NAME = 269
    DISCONNECT_CAUSE = 273
    ORIGIN_STATE_ID = 278
    FAILED_AVP = 279
    PROXY_HOST = 280
    ERROR_MESSAGE = 281
    ROUTE_RECORD = 282
    DESTINATION_REALM = 283
    PROXY_INFO = 284
    DESTINATION_HOST = 293
    ERROR_REPORTING_HOST = 294
    ORIGIN_REALM = 296
    EXPERIMENTAL_RESULT = 297
    INBAND_SECURITY_ID = 299
