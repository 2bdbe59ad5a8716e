"""The monthly value report of an account: :mod:`.build` (the data, read through
:mod:`shared.read`), :mod:`.render` (the printable HTML page) and :mod:`.send` (the email and
its delivery, ``tend report --email``)."""
