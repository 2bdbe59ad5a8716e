"""The backtest (issue 12): how well scores and alert rules predicted the churn that happened.

- :mod:`~shared.backtest.model`: what a replay produced per account (band spans, alerts raised)
  and the churn recorded (cancellations with their MRR)
- :mod:`~shared.backtest.report`: the figures (calibration per band; precision, recall, lead
  time and noise per rule; churned MRR flagged ahead), written out in docs/backtest.md
- :mod:`~shared.backtest.runs`: stored runs (``backtest_runs``), the latest for the console

Pure: the replay itself (the scorer's and the rules' real code, day by day in event time) is
wired by the CLI (:mod:`services.cli.backtest`), the only place that may use both services.
"""
