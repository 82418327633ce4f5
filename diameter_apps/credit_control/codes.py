"""Credit-control wire values (RFC 4006 / RFC 8506, 3GPP TS 32.299 / 29.061) as IntEnums.

The base codes (command codes, Result-Codes, base AVP codes) live in :mod:`diameter_apps.codes`;
this module adds only what the credit-control application reads or writes by name.
"""

from __future__ import annotations

from enum import IntEnum


class CcAvp(IntEnum):
    """RFC 4006 AVP codes (vendor 0) plus the few RADIUS-derived ones a CCR/CCA carries."""

    USER_NAME = 1
    FILTER_ID = 11
    CALLED_STATION_ID = 30
    EVENT_TIMESTAMP = 55
    RE_AUTH_REQUEST_TYPE = 285
    TERMINATION_CAUSE = 295
    ACCOUNTING_RECORD_TYPE = 480
    ACCOUNTING_RECORD_NUMBER = 485
    CC_INPUT_OCTETS = 412
    CC_MONEY = 413
    CC_OUTPUT_OCTETS = 414
    CC_REQUEST_NUMBER = 415
    CC_REQUEST_TYPE = 416
    CC_SERVICE_SPECIFIC_UNITS = 417
    CC_SESSION_FAILOVER = 418
    CC_SUB_SESSION_ID = 419
    CC_TIME = 420
    CC_TOTAL_OCTETS = 421
    CHECK_BALANCE_RESULT = 422
    COST_INFORMATION = 423
    COST_UNIT = 424
    CURRENCY_CODE = 425
    CREDIT_CONTROL_FAILURE_HANDLING = 427
    DIRECT_DEBITING_FAILURE_HANDLING = 428
    EXPONENT = 429
    FINAL_UNIT_INDICATION = 430
    GRANTED_SERVICE_UNIT = 431
    RATING_GROUP = 432
    REDIRECT_ADDRESS_TYPE = 433
    REDIRECT_SERVER = 434
    REDIRECT_SERVER_ADDRESS = 435
    REQUESTED_ACTION = 436
    REQUESTED_SERVICE_UNIT = 437
    RESTRICTION_FILTER_RULE = 438
    SERVICE_IDENTIFIER = 439
    SUBSCRIPTION_ID = 443
    SUBSCRIPTION_ID_DATA = 444
    UNIT_VALUE = 445
    USED_SERVICE_UNIT = 446
    VALUE_DIGITS = 447
    VALIDITY_TIME = 448
    FINAL_UNIT_ACTION = 449
    SUBSCRIPTION_ID_TYPE = 450
    TARIFF_TIME_CHANGE = 451
    TARIFF_CHANGE_USAGE = 452
    MULTIPLE_SERVICES_INDICATOR = 455
    MULTIPLE_SERVICES_CREDIT_CONTROL = 456
    USER_EQUIPMENT_INFO = 458
    USER_EQUIPMENT_INFO_TYPE = 459
    USER_EQUIPMENT_INFO_VALUE = 460
    SERVICE_CONTEXT_ID = 461
    CC_CORRELATION_ID = 411
    ACCT_MULTI_SESSION_ID = 50


class GppAvp(IntEnum):
    """3GPP AVP codes (Vendor-Id 10415) of TS 32.299 and TS 29.061."""

    CHARGING_ID = 2
    CHARGING_CHARACTERISTICS = 13
    SGSN_MCC_MNC = 18
    RAT_TYPE = 21
    USER_LOCATION_INFO = 22
    ROLE_OF_NODE = 829
    CALLING_PARTY_ADDRESS = 831
    CALLED_PARTY_ADDRESS = 832
    IMS_CHARGING_IDENTIFIER = 841
    TIME_QUOTA_THRESHOLD = 868
    VOLUME_QUOTA_THRESHOLD = 869
    TRIGGER_TYPE = 870
    QUOTA_HOLDING_TIME = 871
    REPORTING_REASON = 872
    SERVICE_INFORMATION = 873
    PS_INFORMATION = 874
    IMS_INFORMATION = 876
    ADDRESS_DATA = 897
    RECIPIENT_ADDRESS = 1201
    UNIT_QUOTA_THRESHOLD = 1226
    REQUESTED_PARTY_ADDRESS = 1251
    ACCESS_NETWORK_INFORMATION = 1263
    TRIGGER = 1264
    SMS_INFORMATION = 2000
    LOW_BALANCE_INDICATION = 2020
    REMAINING_BALANCE = 2021
    RECIPIENT_INFO = 2026
    IMS_VISITED_NETWORK_IDENTIFIER = 2713


class CcRequestType(IntEnum):
    INITIAL = 1
    UPDATE = 2
    TERMINATION = 3
    EVENT = 4


class SubscriptionIdType(IntEnum):
    """RFC 4006 §8.47 (E164, IMSI, SIP_URI, NAI, PRIVATE)."""

    E164 = 0
    IMSI = 1
    SIP_URI = 2
    NAI = 3
    PRIVATE = 4


class RequestedAction(IntEnum):
    DIRECT_DEBITING = 0
    REFUND_ACCOUNT = 1
    CHECK_BALANCE = 2
    PRICE_ENQUIRY = 3


class MultipleServicesIndicator(IntEnum):
    MULTIPLE_SERVICES_NOT_SUPPORTED = 0
    MULTIPLE_SERVICES_SUPPORTED = 1


class CcSessionFailover(IntEnum):
    FAILOVER_NOT_SUPPORTED = 0
    FAILOVER_SUPPORTED = 1


class CreditControlFailureHandling(IntEnum):
    TERMINATE = 0
    CONTINUE = 1
    RETRY_AND_TERMINATE = 2


class DirectDebitingFailureHandling(IntEnum):
    TERMINATE_OR_BUFFER = 0
    CONTINUE = 1


class CheckBalanceResult(IntEnum):
    ENOUGH_CREDIT = 0
    NO_CREDIT = 1


class TariffChangeUsage(IntEnum):
    """Whether a Used-Service-Unit counts units before or after a Tariff-Time-Change."""

    UNIT_BEFORE_TARIFF_CHANGE = 0
    UNIT_AFTER_TARIFF_CHANGE = 1
    UNIT_INDETERMINATE = 2


class FinalUnitAction(IntEnum):
    TERMINATE = 0
    REDIRECT = 1
    RESTRICT_ACCESS = 2


class RedirectAddressType(IntEnum):
    IPV4_ADDRESS = 0
    IPV6_ADDRESS = 1
    URL = 2
    SIP_URI = 3


class ReAuthRequestType(IntEnum):
    AUTHORIZE_ONLY = 0
    AUTHORIZE_AUTHENTICATE = 1


class UserEquipmentInfoType(IntEnum):
    IMEISV = 0
    MAC = 1
    EUI64 = 2
    MODIFIED_EUI64 = 3


class ReportingReason(IntEnum):
    """3GPP TS 32.299 §7.2.175. Informative: the parser keeps unknown values as plain ints."""

    THRESHOLD = 0
    QHT = 1
    FINAL = 2
    QUOTA_EXHAUSTED = 3
    VALIDITY_TIME = 4
    OTHER_QUOTA_TYPE = 5
    RATING_CONDITION_CHANGE = 6
    FORCED_REAUTHORISATION = 7
    POOL_EXHAUSTED = 8
    UNUSED_QUOTA_TIMER = 9


class RoleOfNode(IntEnum):
    """TS 32.299 §7.2.186 (PROXY_ROLE is FORWARDING_ROLE in later releases). Informative."""

    ORIGINATING_ROLE = 0
    TERMINATING_ROLE = 1
    PROXY_ROLE = 2
    B2BUA_ROLE = 3


class LowBalanceIndication(IntEnum):
    NOT_APPLICABLE = 0
    YES = 1


class ServiceDomain(IntEnum):
    """The 3GPP charging domain of a Service-Context-Id, named by its TS 32.2xx number."""

    PS = 32251
    IMS = 32260
    MMS = 32270
    SMS = 32274
    MMTEL = 32275


class GeographicLocationType(IntEnum):
    """First octet of 3GPP-User-Location-Info (TS 29.061 §16.4.7.2)."""

    CGI = 0
    SAI = 1
    RAI = 2
    TAI = 128
    ECGI = 129
    TAI_ECGI = 130
    ENODEB_ID = 131
    TAI_ENODEB_ID = 132
    EXTENDED_ENODEB_ID = 133
    TAI_EXTENDED_ENODEB_ID = 134
    NCGI = 135
    TAI_5GS = 136
    TAI_5GS_NCGI = 137
