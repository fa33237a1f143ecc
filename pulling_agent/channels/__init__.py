"""Control channels: each turns what it observes into a `Command` on the queue."""
