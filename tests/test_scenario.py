"""The generated scenario: its story's weeks never change when more weeks are generated,
and its concept drift persists."""

from __future__ import annotations

from keel.scenario import CONCEPT_DRIFT_FROM, STORY_WEEKS, generate


def test_more_weeks_leave_the_storys_weeks_and_their_user_features_unchanged():
    short = generate(
        seed=7, training_weeks=3, week_rows=1500, production_weeks=STORY_WEEKS, user_features=True
    )
    longer = generate(
        seed=7,
        training_weeks=3,
        week_rows=1500,
        production_weeks=STORY_WEEKS + 3,
        user_features=True,
    )
    assert longer.training.equals(short.training)
    assert all(a.equals(b) for a, b in zip(short.weeks, longer.weeks[:STORY_WEEKS], strict=True))
    # The later weeks are served correctly: their user-level feature counts the events.
    assert len(longer.weeks) == STORY_WEEKS + 3
    assert longer.user_events.num_rows > short.user_events.num_rows


def test_the_concept_drift_persists_from_its_week_on():
    scenario = generate(seed=1, training_weeks=2, week_rows=500, production_weeks=20)
    kinds = {week: change["kind"] for week, change in scenario.changes.items()}
    assert all(kinds[week] == "concept drift" for week in range(CONCEPT_DRIFT_FROM, 21))
    assert 12 not in kinds and kinds[11] == "broken correlation"  # quiet before it
