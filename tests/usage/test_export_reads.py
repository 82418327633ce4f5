"""How the exporter bounds its Redis commands: which streams a read covers (``ReadPlan``), how
far a stream is trimmed right after an acknowledgement, and when it reads again."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from usage.export_core import PollPace, ReadPlan, parse_id, trim_point_after_ack


def plan(**overrides: int) -> ReadPlan:
    settings = dict(shards=1024, count=4, chunk_streams=256, entries_max=4096)
    settings.update(overrides)
    return ReadPlan(**settings)


def test_a_pass_over_every_shard_is_cut_into_bounded_commands() -> None:
    commands = plan().next_read()
    assert [len(shards) for shards, _ in commands] == [256, 256, 256, 256]
    assert [shard for shards, _ in commands for shard in shards] == list(range(1024))
    assert {count for _, count in commands} == {4}


def test_full_streams_form_a_backlog_read_deeper_but_within_entries_max() -> None:
    reads = plan()
    for command in reads.next_read():
        shards, count = command
        # shards 0-99 gave all they were asked for: more is waiting in them
        reads.delivered(command, {s: count for s in shards if s < 100} | {500: 1})
    assert reads.more and list(reads.backlog) == list(range(100))
    (deep,) = reads.next_read()
    shards, count = deep
    assert shards == tuple(range(32)) and count == 4096 // 32
    reads.delivered(deep, dict.fromkeys(shards[:10], count))  # 10 still full, 22 drained
    assert list(reads.backlog)[:3] == [32, 33, 34] and len(reads.backlog) == 78
    (deep,) = reads.next_read()
    assert deep[0][:2] == (32, 33)  # the others first: rotation


def test_a_full_pass_comes_back_while_a_backlog_lasts() -> None:
    reads = plan(full_every=3)
    for command in reads.next_read():
        reads.delivered(command, {command[0][0]: command[1]})
    kinds = []
    for _ in range(8):
        commands = reads.next_read()
        kinds.append("full" if len(commands) == 4 else "deep")
        for command in commands:  # every stream read stays full: the backlog never ends
            reads.delivered(command, dict.fromkeys(command[0][:1], command[1]))
    assert kinds == ["deep", "deep", "deep", "full", "deep", "deep", "deep", "full"]


@settings(deadline=None)  # never a timing test: the machine may be busy
@given(
    st.integers(1, 2048),
    st.integers(1, 64),
    st.integers(1, 1024),
    st.integers(1, 20_000),
    st.lists(st.integers(0, 2047), max_size=300),
)
def test_no_command_asks_more_than_its_bound(
    shards: int, count: int, chunk: int, entries_max: int, full: list[int]
) -> None:
    reads = ReadPlan(shards=shards, count=count, chunk_streams=chunk, entries_max=entries_max)
    for _ in range(3):
        for command in reads.next_read():
            streams, asked = command
            assert len(streams) <= max(chunk, 32) and len(set(streams)) == len(streams)
            assert all(0 <= s < shards for s in streams)
            # a deep read: at most entries_max (or the pass's own count if that is larger)
            assert asked * len(streams) <= max(entries_max, count * len(streams))
            reads.delivered(command, {s: asked for s in streams if s in full})


IDS = st.tuples(st.integers(0, 10**13), st.integers(0, 5)).map(lambda t: f"{t[0]}-{t[1]}")


@settings(deadline=None)
@given(IDS, st.one_of(st.none(), IDS))
def test_a_trim_after_an_ack_never_passes_a_pending_entry_nor_the_acknowledged(
    acked: str, pending: str | None
) -> None:
    point = parse_id(trim_point_after_ack(acked, pending))
    assert point > parse_id(acked) or (pending is not None and point == parse_id(pending))
    if pending is not None:
        assert point <= parse_id(pending)  # the pending entry is kept
    # everything up to the acknowledged entry goes when nothing older is pending
    if pending is None or parse_id(pending) > parse_id(acked):
        ms, seq = parse_id(acked)
        assert point == (ms, seq + 1)


def test_a_backlog_is_read_again_at_once_even_below_a_batch() -> None:
    pace = PollPace(linger_s=0.5, idle_max_s=2.0, batch_size=2000)
    assert pace.after_read(300) == 0.5
    assert pace.after_read(300, more=True) == 0.0
