"""Coaching: the `warn` action's acknowledgement tickets and grants, and the pages that ask."""
