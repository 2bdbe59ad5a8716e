"""The CSM console: server-rendered HTML pages over the accounts, scores and alerts.

``router`` (in :mod:`services.web.console.routes`) serves everything under ``/console``,
its stylesheet included; an app needs ``app.state.sessions`` and ``app.state.api_token``
(optionally ``app.state.clock`` and ``app.state.config``).
"""
