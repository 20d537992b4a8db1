"""The api reference service: HTTP, reading and writing items through its cache to its database."""
