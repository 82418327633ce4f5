"""Wholesale settlement: the host MNO's invoice reconciled against our usage, allocation to each
MVNO, disputes and statements.

Pure domain logic, like ``tariffs``: no sockets, no database. ``usage`` computes the aggregates
and the record-level matches in SQL and hands the figures to the functions here; ``ocs`` wires
the ``ocs settle`` commands. Money is integer micro-units throughout.
"""
