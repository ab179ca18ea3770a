"""What an audit trail shows of one change: the fields that differ, each before and after."""

from ticketstream_shared.audit import changed_fields


def test_only_the_fields_that_changed_each_before_and_after():
    before = {"name": "VPN", "tier": 1, "skills": ["network"]}
    after = {"name": "VPN", "tier": 2, "skills": ["network", "vpn"], "capacity": 5}
    assert changed_fields(before, after) == {
        "tier": {"before": 1, "after": 2},
        "skills": {"before": ["network"], "after": ["network", "vpn"]},
        "capacity": {"before": None, "after": 5},
    }
    assert changed_fields(after, after) == {}
    assert changed_fields(None, {"name": "VPN"}) == {"name": {"before": None, "after": "VPN"}}
