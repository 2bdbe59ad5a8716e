"""Alert state shared by the alerts consumer and the web service (APIs and console).

:mod:`shared.alerting.lifecycle` is the pure life cycle of an alert (event-time episodes and the
present-time row: open, acknowledged, snoozed, resolved); :mod:`shared.alerting.state` maps it
onto ``alerts`` rows and applies manual moves under row locks, so a person's move never
interleaves with a consumer batch deciding about the same alert.
"""
