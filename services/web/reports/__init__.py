"""The monthly value report of an account (docs/reports.md): :mod:`.build` (the data, read
through :mod:`shared.read`), :mod:`.highlights` (the brief), :mod:`.render` (the printable HTML
page), :mod:`.pdf` (the page printed by headless Chromium), :mod:`.send` (recipients, the email
and its delivery) and :mod:`.schedule` (the monthly send through the outbox)."""
