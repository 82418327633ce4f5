"""Diameter base protocol and credit-control applications, sans-IO."""
