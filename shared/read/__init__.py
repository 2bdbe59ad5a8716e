"""The read models: the ONE query layer over accounts, scores, usage and alerts.

The read API, the alerts API, the console and the monthly reports all read through these
functions, so they never disagree about a number. Every function takes an open
``AsyncSession``, only reads (except :func:`shared.read.alerts.get_alert` with ``lock=True``,
for a manual move in the caller's transaction) and never commits. The scorer's working queries
(activity for a chunk of accounts, re-score marks) stay in the scorer: they serve its writes.

- :mod:`shared.read.accounts`: accounts, their filters and CSMs.
- :mod:`shared.read.scores`: current and historical health scores.
- :mod:`shared.read.usage`: daily rollups and monthly totals.
- :mod:`shared.read.alerts`: alert rows, their deliveries and counts.
- :mod:`shared.read.events`: the last events counted per account, with their write keys.
- :mod:`shared.read.retention`: churn, retention, CLV and time to value over months.
"""
