"""The web reference service: an HTML front page built from what the api answers."""
