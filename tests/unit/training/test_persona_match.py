"""Matching a retrain's clusters to the champion's personas on small synthetic centroids."""

from __future__ import annotations

import numpy as np

from training.persona_match import centroids_in, match_personas

# The champion: personas 0, 1 and 4 (ids need not be contiguous) at three corners, 100 rows each.
OLD_CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
OLD_IDS = [0, 1, 4]
OLD_NAMES = {0: "loyal fans", 1: "at-risk bargain hunters", 4: "steady browsers"}


def _rows(points: list[tuple[float, float]], per: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([np.asarray(p) + rng.normal(0, 0.5, (per, 2)) for p in points])


def _champion_labels(rows: np.ndarray) -> np.ndarray:
    nearest = np.argmin(np.linalg.norm(rows[:, None, :] - OLD_CENTERS[None], axis=2), axis=1)
    return np.asarray(OLD_IDS)[nearest]


def _match(rows: np.ndarray, new_labels: np.ndarray, k: int, next_id: int | None = None):
    fresh = {j: f"fresh {j}" for j in range(k)}
    return match_personas(OLD_CENTERS, OLD_IDS, OLD_NAMES, centroids_in(rows, new_labels, k),
                          _champion_labels(rows), new_labels, fresh, next_id=next_id)


def _status(match, persona_id: int) -> str:
    return next(c.status for c in match.changes if c.persona_id == persona_id)


def test_permuted_clusters_keep_their_ids_and_names() -> None:
    # given: the same three groups, numbered differently by the new fit
    rows = _rows([(0, 0), (10, 0), (0, 10)])
    new_labels = np.repeat([2, 0, 1], 100)

    # when
    match = _match(rows, new_labels, 3)

    # then
    assert match.ids == (1, 4, 0)
    assert match.names == OLD_NAMES
    assert {c.status for c in match.changes} == {"kept"}
    assert all(abs(c.share_before - c.share_after) < 0.02 for c in match.changes)


def test_a_split_persona_keeps_its_id_on_one_part_and_names_the_other() -> None:
    # given: persona 4's customers form two groups now
    rows = _rows([(0, 0), (10, 0), (0, 8.5), (0, 11.5)], per=100)
    new_labels = np.repeat([0, 1, 2, 3], 100)

    # when
    match = _match(rows, new_labels, 4)

    # then
    assert match.ids[:2] == (0, 1)
    assert 4 in match.ids[2:]
    part = next(i for i in match.ids[2:] if i != 4)
    assert part == 5  # a fresh id
    assert _status(match, 4) == "split"
    assert _status(match, part) == "split"
    kept = match.change_of(4)
    assert kept is not None
    assert kept.related == (part,)
    assert kept.describe().startswith('4 "steady browsers": kept its id, split off 5')
    assert kept.share_before == 0.5
    assert kept.share_after == 0.25


def test_a_persona_split_into_parts_unlike_itself_retires_its_id_and_the_parts_say_where_from() -> None:
    # given: persona 4's customers now form two groups, each farther from its centre than half a gap
    rows = _rows([(0, 0), (10, 0), (-6, 10), (6, 10)])
    new_labels = np.repeat([0, 1, 2, 3], 100)

    # when
    match = _match(rows, new_labels, 4)

    # then
    assert match.ids == (0, 1, 5, 6)
    retired = next(c for c in match.changes if c.persona_id == 4)
    assert retired.describe() == '4 "steady browsers": split into 5, 6 (share 50.0% -> 0.0%)'
    assert match.change_of(5).describe() == '5 "fresh 2": split from 4 (share 0.0% -> 25.0%)'  # type: ignore[union-attr]


def test_merged_personas_are_named_with_their_shares() -> None:
    # given: personas 1 and 4 now form one group between them
    rows = _rows([(0, 0), (10, 0), (0, 10)])
    new_labels = np.repeat([0, 1, 1], 100)

    # when
    match = _match(rows, new_labels, 2)

    # then: one keeps its id, the other is merged into it with its share before
    survivor = match.ids[1]
    gone = ({1, 4} - {survivor}).pop()
    assert _status(match, survivor) == "merged"
    assert next(c for c in match.changes if c.persona_id == gone).describe().startswith(
        f'{gone} "{OLD_NAMES[gone]}": merged into {survivor} (share 33.3% -> 0.0%)')
    assert match.change_of(survivor).share_after == 2 / 3  # type: ignore[union-attr]


def test_a_new_group_gets_a_fresh_id_never_used_before() -> None:
    # given: a far-away group the champion filed under persona 1; ids up to 6 were used in the past
    rows = _rows([(0, 0), (10, 0), (0, 10), (10, -25)])
    new_labels = np.repeat([0, 1, 2, 3], 100)

    # when
    match = _match(rows, new_labels, 4, next_id=7)

    # then
    assert match.ids == (0, 1, 4, 7)
    assert _status(match, 7) == "new"
    assert match.names[7] == "fresh 3"
    assert match.next_id == 8
    assert {_status(match, i) for i in (0, 1, 4)} == {"kept"}


def test_a_vanished_persona_is_reported_with_its_share_before() -> None:
    # given: persona 4's customers scatter evenly into the other two groups
    rows = _rows([(0, 0), (10, 0), (0, 10)])
    new_labels = np.concatenate([np.zeros(100, int), np.ones(100, int), np.repeat([0, 1], 50)])

    # when
    match = _match(rows, new_labels, 2)

    # then
    assert match.ids == (0, 1)
    vanished = next(c for c in match.changes if c.persona_id == 4)
    assert vanished.status == "vanished"
    assert vanished.name == "steady browsers"
    assert round(vanished.share_before, 3) == 0.333
    assert vanished.share_after == 0.0


def test_a_fresh_name_that_collides_with_a_kept_one_is_made_unique() -> None:
    # given: the new group's own name is one a kept persona carries
    rows = _rows([(0, 0), (10, 0), (0, 10), (10, -25)])
    new_labels = np.repeat([0, 1, 2, 3], 100)
    fresh = {0: "x", 1: "y", 2: "z", 3: "loyal fans"}

    # when
    match = match_personas(OLD_CENTERS, OLD_IDS, OLD_NAMES, centroids_in(rows, new_labels, 4),
                           _champion_labels(rows), new_labels, fresh)

    # then
    assert match.names[0] == "loyal fans"
    assert match.names[5] == "loyal fans 2"


def test_a_retrain_takes_the_champion_ids_and_names_into_its_bundle_and_fast_runner(tmp_path) -> None:
    import dataclasses

    import pandas as pd

    from model.actions import load_policy
    from model.bundle import PersonaPredictor
    from model.runner import FastPersonaRunner, probe_batch
    from tests.conftest import make_training_frame
    from training.config import DEFAULT_POLICY_PATH, PersonaParams, TrainConfig, XGBParams
    from training.data import feature_columns_of
    from training.fit import fit_persona_bundle

    # given: a champion whose personas carry ids 9, 4, 6 (in its centers' order) and their names
    frame = make_training_frame(customers=200, snapshots=2, seed=4)
    times = sorted(frame["event_timestamp"].unique())
    train = frame[frame["event_timestamp"] < times[-1]].reset_index(drop=True)
    holdout = frame[frame["event_timestamp"] == times[-1]].reset_index(drop=True)
    config = TrainConfig(xgb=XGBParams(n_estimators=5), personas=PersonaParams(k_min=3, k_max=3),
                         compare_behavior_only=False)
    policy = load_policy(DEFAULT_POLICY_PATH)
    first = fit_persona_bundle(train, holdout, feature_columns_of(frame), config, policy).predictor
    ids = (9, 4, 6)
    champion = dataclasses.replace(
        first, persona_ids=ids, persona_names={ids[i]: first.persona_names[i] for i in range(3)},
        metadata={**first.metadata, "persona_next_id": 12})

    # when: retrained on the same rows against that champion
    second = fit_persona_bundle(train, holdout, feature_columns_of(frame), config, policy, previous=champion)

    # then: the same groups keep the champion's ids and names, in the bundle and the fast runner
    bundle = second.predictor
    assert sorted(bundle.persona_ids) == [4, 6, 9]
    assert bundle.persona_names == champion.persona_names
    assert {c.status for c in second.persona_match.changes} == {"kept"}  # type: ignore[union-attr]
    np.testing.assert_array_equal(bundle.segments(holdout), champion.segments(holdout))
    assert {card["segment"] for card in second.cards} <= {4, 6, 9}
    batch = probe_batch(bundle, rows=50, seed=5)
    fast = FastPersonaRunner(bundle).predict(batch)["segment"]
    slow = bundle.predict(pd.DataFrame({c: batch.column(c) for c in bundle.feature_columns}))["segment"]
    np.testing.assert_array_equal(fast, slow.to_numpy())
    assert PersonaPredictor.load(bundle.save(tmp_path / "bundle")).persona_ids == bundle.persona_ids


def test_a_persona_that_split_and_absorbed_another_says_both() -> None:
    # given: persona 0 loses a far part while persona 4's few customers join its core
    rng = np.random.default_rng(1)
    rows = np.concatenate([np.asarray(p) + rng.normal(0, 0.3, (n, 2))
                           for p, n in [((0, 0), 150), ((-3, -6), 50), ((10, 0), 100), ((0, 2), 50)]])
    champion = np.repeat([0, 0, 1, 4], [150, 50, 100, 50])
    new_labels = np.repeat([0, 2, 1, 0], [150, 50, 100, 50])

    # when
    match = match_personas(OLD_CENTERS, OLD_IDS, OLD_NAMES, centroids_in(rows, new_labels, 3), champion,
                           new_labels, {0: "a", 1: "b", 2: "c"})

    # then
    assert match.ids == (0, 1, 5)
    kept = match.change_of(0)
    assert kept is not None
    assert kept.describe() == '0 "loyal fans": kept its id, split off 5, merged with 4 (share 57.1% -> 57.1%)'
    assert _status(match, 4) == "merged"


def test_text_axes_of_another_projection_are_left_out_of_the_match() -> None:
    import pandas as pd

    from model.bundle import PersonaPredictor
    from model.preprocess import ClusterSpec, FeatureSpec
    from training.fit import stable_personas

    # given: a champion whose personas 7 and 8 differ in orders and text; the rows' text axis is
    # now another projection's (its sign flipped)
    columns = ("orders_365d", "text_pca_0")
    spec = ClusterSpec(columns, (), (0.0, 0.0), (0.0, 0.0), (1.0, 1.0))
    champion = PersonaPredictor(kind="persona", features=FeatureSpec(columns), models={}, cluster=spec,
                                centers=np.array([[-2.0, -2.0], [2.0, 2.0]]), persona_ids=(7, 8),
                                persona_names={7: "occasional buyers", 8: "frequent buyers"})
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"orders_365d": np.repeat([-2.0, 2.0], 100) + rng.normal(0, 0.2, 200),
                         "text_pca_0": np.repeat([3.0, -3.0], 100) + rng.normal(0, 0.2, 200)})
    labels = np.repeat([0, 1], 100)
    centers = np.array([[-2.0, 3.0], [2.0, -3.0]])

    # when
    apart = stable_personas(champion, rows, labels, centers, {0: "a", 1: "b"}, same_text=False)
    mixed = stable_personas(champion, rows, labels, centers, {0: "a", 1: "b"}, same_text=True)

    # then: on behavior alone the groups keep their ids; the flipped text axis would swap them
    assert apart is not None
    assert mixed is not None
    assert apart.ids == (7, 8)
    assert mixed.ids == (8, 7)
