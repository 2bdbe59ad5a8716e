"""Outcomes (issue 12): what customers did, and the retention maths over it.

- :mod:`~shared.outcomes.model`: the values (outcomes, MRR points, stage changes) and policy
- :mod:`~shared.outcomes.mrr`: MRR history derived from outcomes and the profile
- :mod:`~shared.outcomes.lifecycle`: lifecycle stages (new, growing, renewal, cancelled)
- :mod:`~shared.outcomes.retention`: logo churn, GRR, NRR, expansion/contraction/churned MRR
- :mod:`~shared.outcomes.value`: customer lifetime value, time to customer value
- :mod:`~shared.outcomes.importer`: the operator's CSV/JSON file
- :mod:`~shared.outcomes.repository`: storage over an ``AsyncSession`` (never commits)

Everything but the repository is pure. docs/retention.md writes out every formula.
"""
