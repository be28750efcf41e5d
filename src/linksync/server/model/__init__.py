"""The server's persistent data model: URLs, clients, their indexes and
the events that keep the indexes in step."""
