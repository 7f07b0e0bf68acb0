"""Organisation-wide governance: the model approval workflow and data residency (zero-log is a key's setting:
shared/chat/record.py, shared/lake/schema.py).

- `regions`: the region convention and its matching (pure; the catalog imports it, so this package's
  `__init__` imports nothing).
- `store`: the settings and the approval rows in the catalog table.
- `source`: what the request path reads, from memory, refreshed like the catalog; the tally of calls refused
  for want of an approval, written in bounded batches.
"""
