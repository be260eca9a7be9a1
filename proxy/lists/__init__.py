"""Community AI-domain lists: reading them, importing them into the catalog, measuring coverage."""
