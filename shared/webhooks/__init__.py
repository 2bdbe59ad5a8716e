"""Outbound webhooks (docs/webhooks.md): the endpoints an operator configures
(:mod:`~shared.webhooks.endpoints`), the versioned payload and its HMAC signature
(:mod:`~shared.webhooks.payload`), and the outbox rows written in the transaction that decided
an event (:mod:`~shared.webhooks.outbox`). The alerts service delivers them
(``services/alerts/webhooks.py``); the alerts consumer and the web service's manual moves
write them."""
