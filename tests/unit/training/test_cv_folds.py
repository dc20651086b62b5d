"""``--cv-folds`` a labels table cannot fill is refused with one line, before anything is fitted."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import PersonaError
from training.fit import check_cv_folds


def _labels(positive: int, negative: int) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": range(positive + negative), "purchase": [1] * positive + [0] * negative})


def test_as_many_customers_of_each_class_as_folds_pass() -> None:
    # given 5 buyers among 100 customers, then the same customers labelled twice (one customer, one vote)
    labels = _labels(5, 95)
    twice = pd.concat([labels, labels])
    # then 5 folds are allowed, counted per customer
    check_cv_folds(labels, "purchase", "classification", 5)
    check_cv_folds(twice, "purchase", "classification", 5)


@pytest.mark.parametrize(("positive", "negative", "short"), [(4, 95, "purchase=1"), (95, 4, "purchase=0")])
def test_a_class_with_fewer_customers_than_folds_names_it(positive: int, negative: int, short: str) -> None:
    # given 4 customers of one class
    labels = _labels(positive, negative)
    # then 5 folds are refused, naming the setting, the short class and the fix
    with pytest.raises(PersonaError, match=rf"^--cv-folds 5 needs at least 5 customers of each purchase value; "
                       rf"the labels hold 4 with {short}: lower --cv-folds or label more customers$"):
        check_cv_folds(labels, "purchase", "classification", 5)


def test_a_regression_needs_as_many_customers_as_folds() -> None:
    # given 4 labelled customers of a regression target
    labels = pd.DataFrame({"customer_id": [1, 2, 3, 4], "spend": [1.0, 2.0, 3.0, 4.0]})
    # then 4 folds pass and 5 are refused
    check_cv_folds(labels, "spend", "regression", 4)
    with pytest.raises(PersonaError, match=r"^--cv-folds 5 needs at least 5 labelled customers; the labels hold 4"):
        check_cv_folds(labels, "spend", "regression", 5)
