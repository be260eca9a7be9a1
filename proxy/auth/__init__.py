"""Who a client is: proxy authentication schemes aiwarden implements itself (Kerberos)."""
