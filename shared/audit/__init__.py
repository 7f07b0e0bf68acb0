"""The audit trail: management actions in a hash chain (log.py over chain.py), and a key's calls read back from
its usage records (calls.py)."""

from shared.audit.chain import Verdict
from shared.audit.log import AuditLog, AuditQuery

__all__ = ["AuditLog", "AuditQuery", "Verdict"]
