"""The mvna-ocs server: config, CLI, asyncio transports and the charging service."""
