"""The balance ledger: Redis key layout, Lua scripts, async ledger API, CDR streams."""
