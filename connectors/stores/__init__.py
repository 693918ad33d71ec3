"""Store platforms (Salla, Zid, Shopify): pure request builders, page readers and webhook
verifiers; ``registry.py`` is the only list of them."""
