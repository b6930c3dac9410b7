"""The client's rules, free of any framework: standard library only.

Everything here is pure or talks to the world through the Protocols in
``domain.ports``. ``tests/unit/test_domain_purity.py`` enforces the import rule.
"""
