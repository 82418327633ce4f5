# ruff: noqa: E501  (catalog rows read best one per line)
"""Catalog texts shared by the tariffs tests (inline, so a test shows the data it checks)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch seconds of a Berlin wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=BERLIN).timestamp())


GOLDEN = """\
tenant: gold
currency: EUR
country_code: "49"
timezone: Europe/Berlin
home_zone: home
final_unit: {action: REDIRECT, redirect_url: "https://top.up/"}
services:
  data:  {context: data, unit: byte, rating_groups: [10, 20], default_grant: 1000, max_grant: 5000}
  voice: {context: mmtel, unit: second, default: true, service_identifiers: [7]}
  sms:   {context: sms, unit: event, default: true}
zones:
  home:  {plmns: ["26201"]}
  eu:    {mccs: ["208"]}
  world: {default: true}
destinations:
  de: ["49"]
  de_mobile: ["4915"]
  premium: ["491510"]
  uk: ["44"]
time_bands:
  peak: {days: [mon-fri], from: "08:00", to: "19:00"}
  offpeak: {default: true}
rate_cards:
  - version: v1
    effective_from: "2026-01-01T00:00:00+01:00"
    rates:
      - {service: voice, zone: home, dest: de_mobile, band: peak, price: 0.60, cost: 0.06, per: 60, first_increment: 60}
      - {service: voice, zone: home, dest: de_mobile, price: 0.30, cost: 0.06, per: 60, first_increment: 60}
      - {service: voice, dest: premium, price: 1.20, cost: 1.00, per: 60, first_increment: 60, increment: 60, connect_fee: 0.50}
      - {service: voice, zone: home, dest: de, price: 0.06, cost: 0.01, per: 60, minimum: 0.10}
      - {service: voice, zone: home, dest: uk, price: 0.12, cost: 0.02, per: 60, first_increment: 30, increment: 6}
      - {service: voice, zone: eu, price: 0.24, cost: 0.05, per: 60, first_increment: 60}
      - {service: voice, zone: world, price: 3.00, cost: 1.00, per: 60, first_increment: 60, increment: 60}
      - {service: data, zone: home, price: 1.00, cost: 0.20, per: 1048576, increment: 1024}
      - {service: data, price: 10.00, cost: 2.00, per: 1048576, increment: 1024}
      - {service: sms, price: 0.09, cost: 0.01}
  - version: v2
    effective_from: "2026-07-01T00:00:00+02:00"
    rates:
      - {service: voice, price: 0.10, cost: 0.01, per: 60}
      - {service: data, zone: home, price: 0.50, cost: 0.20, per: 1048576, increment: 1024}
      - {service: data, price: 10.00, cost: 2.00, per: 1048576, increment: 1024}
      - {service: sms, price: 0.09, cost: 0.01}
bundles:
  - id: big
    validity: P30D
    priority: 5
    allowances:
      - {name: data, service: data, zones: [home, eu], amount: 1000000}
  - id: promo
    fee: 2.50
    validity: PT24H
    priority: 20
    on_exhaust: block
    allowances:
      - {name: rg20, service: data, rating_groups: [20], amount: 500000}
      - {service: voice, amount: 600}
  - id: monthly
    validity: P1M
    allowances:
      - {service: sms, amount: 100}
subscribers:
  opening_balance: 5
  bundles: [big]
  ranges:
    - {imsi_first: "001010000000000", imsi_last: "001010000000009",
       msisdn_first: "4930000000", msisdn_last: "4930000009"}
  entries:
    - {msisdn: "4930999", imsi: "001019999999999", opening_balance: 1.5, bundles: [big, promo]}
"""

MINIMAL = """\
tenant: mini
currency: EUR
country_code: "49"
timezone: Europe/Berlin
home_zone: home
services:
  voice: {context: mmtel, unit: second, default: true}
  data: {context: data, unit: byte, rating_groups: [10]}
zones:
  home: {plmns: ["26201"]}
destinations:
  de: ["49"]
rates:
  - {service: voice, price: 0.10, cost: 0.01, per: 60}
  - {service: data, price: 1, cost: 0.5, per: 1048576}
"""
