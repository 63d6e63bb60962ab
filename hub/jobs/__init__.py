"""The jobs adapter: RQ worker processes, the scheduler and the feed process, each building hub.core's services."""
