"""The web service (``tend web``): the one service for people and API clients.

The read API (``/v1/accounts...``), the alerts API (``/v1/alerts...``), the CSM console
(``/console``) and the monthly reports, over the database only (no broker). ``tend up`` mounts
the same app (:func:`services.web.app.create_app`) beside ingest.
"""
