"""Redaction: detectors of secrets and personal data, profiles, and finding the text in
request bodies."""
