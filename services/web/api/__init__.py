"""The web service's JSON APIs: accounts (read API, profiles, reports) and alerts."""
