"""The policy: the model of rules, catalog and settings, and loading it with file:line errors."""
