"""The example database in the repository keeps the failures committed with it: hypothesis would delete each one
the first time it passes, and a fixed bug's example would then never be replayed again."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import KeptExamples


def test_a_committed_example_survives_passing_and_a_new_one_is_handled_as_hypothesis_does(tmp_path: Path) -> None:
    KeptExamples(tmp_path).save(b"test-key", b"the committed failure")
    examples = KeptExamples(tmp_path)  # a later run: what was there is what was committed

    examples.delete(b"test-key", b"the committed failure")
    examples.move(b"test-key", b"test-key.secondary", b"the committed failure")
    examples.save(b"test-key", b"found in this run")
    examples.delete(b"test-key", b"found in this run")

    assert set(examples.fetch(b"test-key")) == {b"the committed failure"}
    assert list(examples.fetch(b"test-key.secondary")) == []
