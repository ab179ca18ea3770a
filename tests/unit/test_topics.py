"""The topics' settings (contract/topics.py): how long each keeps what it holds is stated, never left to a
broker's default, since that bounds how long an erased person's words stay on a topic that holds them plain."""

from ticketstream_shared.contract.topics import TICKETS_INBOUND, TOPICS

DAY_MS = 24 * 3600 * 1000


def test_every_topic_states_its_retention_or_compaction():
    unstated = [spec.name for spec in TOPICS if not {"retention.ms", "cleanup.policy"} & set(spec.config)]
    assert unstated == []


def test_other_systems_requests_in_their_own_words_are_kept_a_week_at_most():
    (inbound,) = [spec for spec in TOPICS if spec.name == TICKETS_INBOUND]
    assert 0 < int(inbound.config["retention.ms"]) <= 7 * DAY_MS
