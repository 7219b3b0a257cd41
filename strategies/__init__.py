"""Built-in search strategies, one small module each, registered through entry points."""
