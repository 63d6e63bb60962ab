"""The HTTP adapter: the Flask app factory and one blueprint per area, over hub.core."""
