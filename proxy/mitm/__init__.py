"""Everything that meets mitmproxy: the addons, the responses they send, and the entry point
for `mitmdump -s`."""
