"""The dynamic directory as the server consults it: a change is seen by the next request even
when the request's answer was remembered (the memo follows the directory's version)."""

from __future__ import annotations

from diameter_apps.credit_control import SubscriptionId
from ocs.charging.directory import CatalogSnapshot
from ocs.subscriber_directory import DirectoryEntry, DynamicDirectory
from tariffs.model import Catalog


def test_snapshot_sees_created_swapped_and_removed_subscribers() -> None:
    dynamic = DynamicDirectory()
    snapshot = CatalogSnapshot(Catalog(tenants=()), dynamic)
    by_msisdn = (SubscriptionId(0, "4915550000001"),)
    by_imsi = (SubscriptionId(1, "262015550000001"),)
    assert snapshot.resolve_ids(by_msisdn) is None  # remembered as unknown
    dynamic.set("4915550000001", DirectoryEntry("acme", "262015550000001"))
    found = snapshot.resolve_ids(by_msisdn)
    assert found is not None and (found.tenant, found.imsi) == ("acme", "262015550000001")
    assert snapshot.resolve_ids(by_imsi) == found
    assert snapshot.by_msisdn("+49 155 50000001") == found
    dynamic.set("4915550000001", DirectoryEntry("acme", "262015550000009"))  # SIM swap
    assert snapshot.resolve_ids(by_imsi) is None
    assert snapshot.resolve_ids((SubscriptionId(1, "262015550000009"),)) is not None
    dynamic.set("4915550000001", None)
    assert snapshot.resolve_ids(by_msisdn) is None
    dynamic.replace_all([("4915550000002", DirectoryEntry("globex"))])
    assert len(dynamic) == 1
    assert snapshot.resolve_ids((SubscriptionId(2, "sip:+4915550000002@x"),)) is not None


def test_a_resync_that_changes_nothing_keeps_the_version() -> None:
    dynamic = DynamicDirectory()
    entries = [("4915550000002", DirectoryEntry("globex", "262015550000002"))]
    dynamic.replace_all(entries)
    dynamic.replace_plans("globex", {"4915550000002": "gold"})
    version = dynamic.version
    dynamic.replace_all(list(entries))
    dynamic.replace_plans("globex", {"4915550000002": "gold"})
    assert dynamic.version == version  # the snapshots' remembered resolutions stay valid
    dynamic.replace_plans("globex", {})
    assert dynamic.version > version
    version = dynamic.version
    dynamic.replace_all([("4915550000002", DirectoryEntry("globex", "262015550000003"))])
    assert dynamic.version > version
