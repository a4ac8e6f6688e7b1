"""Built-in environments. Importing this package registers them."""
