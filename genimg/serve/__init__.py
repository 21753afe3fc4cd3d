"""What a server built on genimg needs: dynamic batching, serving limits, result reports, the load test.

The app (``app.py``) is one such server; nothing in the engine imports this package.
"""
