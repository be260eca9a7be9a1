"""Observing: metrics, the audit log, structured logs, and the reports read from them."""
