"""Who is behind a request when the proxy did not authenticate it: identities that other
systems established (an identity collector's address-to-user map)."""
