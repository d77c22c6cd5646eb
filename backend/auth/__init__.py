"""Accounts: who may use the service (AUTH_MODE), whose jobs are whose, and each owner's quotas."""
