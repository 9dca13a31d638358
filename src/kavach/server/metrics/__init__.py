"""Prometheus metrics: what is counted, how it is exposed, and how workers share it.

Labels take values from small fixed sets only (route templates, methods, status classes,
pool, rule, provider and outcome names): never a secret, a name of one, a token, a user or
a resource id. With metrics off nothing here is imported or called.
"""
