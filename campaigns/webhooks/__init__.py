"""Vendor webhooks: thin views that authenticate, store the raw event once, and hand it to a service."""
