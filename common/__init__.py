"""What the backend and the ML service share: the wire contract of `POST /segment[/batch]` and its helpers.

Neither side imports the other; both import this package, so a change of the contract shows in one place.
"""
