"""Tenant catalogs and rating: pure functions, integer money."""
