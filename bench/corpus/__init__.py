"""Parts of the labelled redaction corpus (see bench/redaction_corpus.py): the published
formats of secrets and personal data, the prompt text they are placed in, and clean text."""
